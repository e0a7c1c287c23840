"""Deterministic image assembly (kunlun_bundle/images/assemble.py), without Docker: the final stage
of a Dockerfile turned into layer tars and a config whose sha256 is the image id."""
import io
import json
import tarfile

import pytest

from kunlun_bundle.errors import BuildError
from kunlun_bundle.images import assemble
from kunlun_bundle.images.assemble import Data, Instruction

EPOCH = 1700000000

DOCKERFILE = '''# a comment
FROM kunlun/paddle:3 AS install
RUN pip install x
# The image
FROM kunlun/paddle:3
COPY entrypoints/ /opt/kunlun/entrypoints/
COPY recipe.json /opt/kunlun/recipe.json
ENV PYTHONPATH=/opt/kunlun/entrypoints \\
    KUNLUN_MODEL=resnet50
LABEL a.title="ResNet50 training" \\
      b.price="costs \\$5 \\"now\\""
USER kunlun
WORKDIR /home/kunlun
ENTRYPOINT ["tini", "--", "python", "-m", "kunlun_train"]
'''


def context():
    return {"entrypoints/kunlun_train/__init__.py": (Data(data=b""), 0o644),
            "entrypoints/kunlun_train/cli.py": (Data(data=b"print('hi')\n"), 0o644),
            "entrypoints/launch_worker.py": (Data(data=b"#!/usr/bin/env python\n"), 0o755),
            "recipe.json": (Data(data=b'{"recipes": {}}\n'), 0o644)}


def members(path):
    with tarfile.open(path) as tar:
        return [(m.name, m.type, m.mode, m.uid, m.gid, m.mtime) for m in tar.getmembers()]


def test_a_dockerfile_parses_into_stages_with_continuations_joined():
    stages = assemble.parse(DOCKERFILE)
    assert [(s.base, s.name) for s in stages] == [("kunlun/paddle:3", "install"), ("kunlun/paddle:3", None)]
    env = stages[1].instructions[2]
    assert (env.keyword, env.line) == ("ENV", 8)
    assert env.value.split() == ["PYTHONPATH=/opt/kunlun/entrypoints", "KUNLUN_MODEL=resnet50"]


def test_env_and_label_words_follow_dockers_quoting_and_expansion():
    assert assemble.pairs('a="x y" b=\\"q\\" c=$HOME/bin d=${HOME}x e=\\$HOME', {"HOME": "/h"}) == \
        [("a", "x y"), ("b", '"q"'), ("c", "/h/bin"), ("d", "/hx"), ("e", "$HOME")]
    assert assemble.pairs('t="costs \\$5 \\"now\\""') == [("t", 'costs $5 "now"')]   # labels: no expansion
    with pytest.raises(BuildError, match="expected KEY=VALUE"):
        assemble.pairs("JUSTAWORD")


def test_the_final_stage_becomes_one_layer_per_copy_and_a_config_without_build_times(tmp_path):
    final = assemble.parse(DOCKERFILE)[-1]
    made = assemble.assemble(final, assemble.Image("linux/amd64", EPOCH), assemble.Sources(context()), tmp_path)
    assert len(made.layers) == 2 and made.image.diff_ids == [d for d, _ in made.layers]
    doc = json.loads(made.image.document())
    assert doc["created"] == "2023-11-14T22:13:20Z" and doc["architecture"] == "amd64"
    assert {h["created"] for h in doc["history"]} == {"2023-11-14T22:13:20Z"}
    assert [("empty_layer" in h) for h in doc["history"]] == [False, False, True, True, True, True, True]
    config = doc["config"]
    assert config["Env"] == ["PYTHONPATH=/opt/kunlun/entrypoints", "KUNLUN_MODEL=resnet50"]
    assert config["Labels"] == {"a.title": "ResNet50 training", "b.price": 'costs $5 "now"'}
    assert (config["User"], config["WorkingDir"]) == ("kunlun", "/home/kunlun")
    assert config["Entrypoint"][0] == "tini" and "Cmd" not in config


def test_a_layer_is_sorted_with_parents_first_one_mtime_and_root_owned(tmp_path):
    final = assemble.parse(DOCKERFILE)[-1]
    made = assemble.assemble(final, assemble.Image("linux/amd64", EPOCH), assemble.Sources(context()), tmp_path)
    listed = members(made.layers[0][1])
    assert [m[0] for m in listed] == ["opt", "opt/kunlun", "opt/kunlun/entrypoints", "opt/kunlun/entrypoints/kunlun_train",
                                      "opt/kunlun/entrypoints/kunlun_train/__init__.py",
                                      "opt/kunlun/entrypoints/kunlun_train/cli.py", "opt/kunlun/entrypoints/launch_worker.py"]
    assert {(m[3], m[4], m[5]) for m in listed} == {(0, 0, EPOCH)}
    assert dict((m[0], m[2]) for m in listed)["opt/kunlun/entrypoints/launch_worker.py"] == 0o755


def test_the_same_inputs_give_the_same_bytes_and_image_id(tmp_path):
    final = assemble.parse(DOCKERFILE)[-1]
    ids, layers = set(), set()
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        made = assemble.assemble(final, assemble.Image("linux/amd64", EPOCH), assemble.Sources(context()), tmp_path / run)
        ids.add(made.image.id)
        layers.add(tuple(p.read_bytes() for _, p in made.layers))
    assert len(ids) == 1 and len(layers) == 1


def daemon_tar(tmp_path, entries):
    """A tar as the daemon's get_archive returns it: the source's basename as the top entry."""
    path = tmp_path / "from-stage.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind, mode, data, extra in entries:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 1795000000, 1000, 50
            info.size = len(data)
            for k, v in extra.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def test_copy_from_the_install_stage_takes_contents_dockers_way(tmp_path):
    """COPY --from=install /usr/local/ /usr/local/: what is inside goes in, root-owned, at the epoch;
    the destination keeps the source directory's own mode and group (Debian's /usr/local is 2775 root:staff);
    a hard link becomes a copy of its target; a symlink stays a symlink."""
    raw = daemon_tar(tmp_path, [
        ("local", tarfile.DIRTYPE, 0o2775, b"", {"uid": 0}),
        ("local/xpu-4.31.0", tarfile.DIRTYPE, 0o755, b"", {}),
        ("local/xpu-4.31.0/bin/xpu_smi", tarfile.REGTYPE, 0o755, b"#!/bin/sh\n", {}),
        ("local/xpu-4.31.0/bin/smi2", tarfile.LNKTYPE, 0o755, b"", {"linkname": "local/xpu-4.31.0/bin/xpu_smi"}),
        ("local/xpu", tarfile.SYMTYPE, 0o777, b"", {"linkname": "/usr/local/xpu-4.31.0"}),
    ])
    ins = Instruction("COPY", "--from=install /usr/local/ /usr/local/", 1)
    layer = assemble.copy_layer(ins, assemble.Sources({}, from_stage=lambda path: raw), EPOCH)
    out = tmp_path / "layer.tar"
    with open(out, "wb") as f:
        layer.write(f)
    listed = {m[0]: m[1:] for m in members(out)}
    assert listed["usr"] == (tarfile.DIRTYPE, 0o755, 0, 0, EPOCH)
    assert listed["usr/local"] == (tarfile.DIRTYPE, 0o2775, 0, 50, EPOCH)
    assert listed["usr/local/xpu-4.31.0/bin/xpu_smi"] == (tarfile.REGTYPE, 0o755, 0, 0, EPOCH)
    assert listed["usr/local/xpu-4.31.0/bin/smi2"][0] == tarfile.REGTYPE           # the link, as a copy
    assert listed["usr/local/xpu"][0] == tarfile.SYMTYPE
    with tarfile.open(out) as tar:
        assert tar.extractfile("usr/local/xpu-4.31.0/bin/smi2").read() == b"#!/bin/sh\n"
        assert tar.getmember("usr/local/xpu").linkname == "/usr/local/xpu-4.31.0"


def test_a_single_file_copied_into_a_directory(tmp_path):
    raw = daemon_tar(tmp_path, [("kunlun-suite-x.pth", tarfile.REGTYPE, 0o644, b"/opt/kunlun/suites/x\n", {})])
    ins = Instruction("COPY", "--from=install /venv/site/kunlun-suite-x.pth /opt/kunlun/venv/site/", 1)
    layer = assemble.copy_layer(ins, assemble.Sources({}, from_stage=lambda path: raw), EPOCH)
    assert "opt/kunlun/venv/site/kunlun-suite-x.pth" in layer.entries


def test_commands_in_the_final_stage_are_refused_with_the_fix(tmp_path):
    final = assemble.parse("FROM x\nRUN date > /built-at\n")[-1]
    with pytest.raises(BuildError, match="RUN in the final stage.*run commands in the install stage"):
        assemble.assemble(final, assemble.Image("linux/amd64", EPOCH), assemble.Sources({}), tmp_path)


def test_the_load_archive_lists_every_layer_but_carries_only_the_new_ones(tmp_path):
    final = assemble.parse(DOCKERFILE)[-1]
    parent = assemble.Image("linux/amd64", EPOCH, diff_ids=["sha256:" + "a" * 64],
                            history=[{"created": "x", "created_by": "ADD rootfs.tar /"}])
    made = assemble.assemble(final, parent, assemble.Sources(context()), tmp_path)
    out = io.BytesIO()
    assemble.write_archive(made, ["kunlun/resnet50:latest"], out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        assert manifest["RepoTags"] == ["kunlun/resnet50:latest"] and len(manifest["Layers"]) == 3
        assert manifest["Layers"][0] not in tar.getnames()                    # the parent's: the daemon has it
        assert all(name in tar.getnames() for name in manifest["Layers"][1:])
        assert tar.extractfile(manifest["Config"]).read() == made.image.document()


def test_replaying_a_stage_gives_the_config_of_the_image_it_made(tmp_path):
    final = assemble.parse(DOCKERFILE)[-1]
    made = assemble.assemble(final, assemble.Image("linux/amd64", EPOCH), assemble.Sources(context()), tmp_path)
    again = assemble.replay(final, assemble.Image("linux/amd64", EPOCH), made.image.diff_ids)
    assert again.id == made.image.id
    with pytest.raises(BuildError, match="not assembled from the current Dockerfiles"):
        assemble.replay(final, assemble.Image("linux/amd64", EPOCH), made.image.diff_ids[:1])
