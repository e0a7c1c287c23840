"""The Debian base's lock: parsing a Packages index, resolving the package set as mmdebstrap's `apt`
variant installs it, the lock file's round trip and drift, and a mirror that dropped a locked version."""
from __future__ import annotations

import pytest

from kunlun_bundle.errors import InputError
from kunlun_bundle.host import cache
from kunlun_bundle.images import debian, fetch

H = "ab" * 32

PACKAGES = f"""\
Package: base-files
Version: 12.4
Architecture: amd64
Essential: yes
Priority: required
Pre-Depends: awk
Filename: pool/main/b/base-files/base-files_12.4_amd64.deb
SHA256: {"01" * 32}

Package: mawk
Version: 1.3.4
Architecture: amd64
Priority: required
Provides: awk
Filename: pool/main/m/mawk/mawk_1.3.4_amd64.deb
SHA256: {"02" * 32}

Package: gawk
Version: 1:5.2.1
Architecture: amd64
Priority: optional
Provides: awk
Depends: libmpfr6
Filename: pool/main/g/gawk/gawk_5.2.1_amd64.deb
SHA256: {"03" * 32}

Package: libmpfr6
Version: 4.2.0
Architecture: amd64
Filename: pool/main/m/mpfr4/libmpfr6_4.2.0_amd64.deb
SHA256: {"04" * 32}

Package: apt
Version: 2.6.1
Architecture: amd64
Priority: required
Depends: libc6 (>= 2.34), gpgv | gpgv2,
 debian-archive-keyring
Recommends: ca-certificates
Filename: pool/main/a/apt/apt_2.6.1_amd64.deb
SHA256: {"05" * 32}

Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
SHA256: {"06" * 32}

Package: gpgv
Version: 2.2.40
Architecture: amd64
Filename: pool/main/g/gnupg2/gpgv_2.2.40_amd64.deb
SHA256: {"07" * 32}

Package: gpgv2
Version: 2.2.40
Architecture: amd64
Filename: pool/main/g/gnupg2/gpgv2_2.2.40_amd64.deb
SHA256: {"08" * 32}

Package: debian-archive-keyring
Version: 2023.3
Architecture: all
Filename: pool/main/d/debian-archive-keyring/debian-archive-keyring_2023.3_all.deb
SHA256: {"09" * 32}

Package: ca-certificates
Version: 20230311
Architecture: all
Depends: openssl:any (>= 1.1.1)
Filename: pool/main/c/ca-certificates/ca-certificates_20230311_all.deb
SHA256: {"0a" * 32}

Package: openssl
Version: 3.0.17
Architecture: amd64
Depends: libc6
Filename: pool/main/o/openssl/openssl_3.0.17_amd64.deb
SHA256: {"0b" * 32}
"""


def names(stanzas):
    return [s["Package"] for s in stanzas]


def test_an_index_parses_with_continuation_lines():
    index = debian.parse_packages(PACKAGES)
    assert len(index) == 11 and index["apt"]["Version"] == "2.6.1"
    assert debian.relation(index["apt"]["Depends"]) == [["libc6"], ["gpgv", "gpgv2"], ["debian-archive-keyring"]]
    assert debian.relation("openssl:any (>= 1.1.1), a | b:native") == [["openssl"], ["a", "b"]]


def test_the_apt_variant_is_essential_plus_apt_plus_the_packages_closed_over_depends():
    chosen = names(debian.resolve(debian.parse_packages(PACKAGES), []))
    # awk: the required provider (mawk), not the first by name (gawk); gpgv, not gpgv2; no Recommends
    assert chosen == ["apt", "base-files", "debian-archive-keyring", "gpgv", "libc6", "mawk"]
    with_ca = names(debian.resolve(debian.parse_packages(PACKAGES), ["ca-certificates"]))
    assert {"ca-certificates", "openssl"} <= set(with_ca) and "gawk" not in with_ca


def test_an_unknown_package_is_named():
    with pytest.raises(InputError, match="'tini' is not in the mirror's index"):
        debian.resolve(debian.parse_packages(PACKAGES), ["tini"])


def test_the_lock_round_trips_and_goes_stale_with_the_matrix(repo_copy, write_matrix):
    from kunlun_bundle import matrix as matrix_mod
    one = matrix_mod.load(write_matrix(lambda d: d["bases"]["bookworm"].update(packages=["ca-certificates"])))
    arch = one.arch_registry.resolve("x86_64")[0]
    made = debian.lock_from_index(one, "bookworm", arch, debian.parse_packages(PACKAGES))
    assert made.cell == "base/bookworm-x86_64"
    again = debian.DebLock.parse(made.text())
    assert again == made and again.debs[0].url == f"{one.bases['bookworm'].mirror}/{again.debs[0].path}"
    path = repo_copy / debian.lock_path("bookworm", arch)
    path.write_text(made.text())
    assert debian.is_current(one, "bookworm", arch, repo_copy)
    two = matrix_mod.load(write_matrix(lambda d: d["bases"]["bookworm"].update(packages=["ca-certificates", "patch"])))
    assert not debian.is_current(two, "bookworm", arch, repo_copy)


def test_the_committed_base_locks_are_current_and_complete(matrix, root):
    for arch in matrix.arch_registry.resolve("all"):
        lock = debian.DebLock.read(root / debian.lock_path("bookworm", arch))
        assert debian.is_current(matrix, "bookworm", arch, root)
        locked = {d.name for d in lock.debs}
        assert set(matrix.bases["bookworm"].packages) | {"apt", "dpkg", "libc6"} <= locked
        assert {d.arch for d in lock.debs} <= {arch.debian, "all"}


def test_an_edited_lock_line_is_refused():
    text = debian.DebLock("base/x", H, "http://m", "bookworm", ()).text() + "apt 2.6.1 amd64 nothex pool/a.deb\n"
    with pytest.raises(InputError, match="not a Debian lock line"):
        debian.DebLock.parse(text)


def test_a_version_the_mirror_no_longer_serves_names_the_package_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("KUNLUN_CACHE", str(tmp_path))
    monkeypatch.setenv("KUNLUN_SOURCES", "")
    monkeypatch.setattr(fetch, "config_file", lambda: tmp_path / "none.yaml")

    def gone(url, dest, progress):
        raise InputError(f"could not download {url}: HTTP Error 404: Not Found")
    monkeypatch.setattr(fetch, "_download", gone)
    deb = debian.Deb("tini", "0.19.0-1", "amd64", H, "pool/main/t/tini/tini_0.19.0-1_amd64.deb", "http://m/debian")
    lock = debian.DebLock("base/bookworm-x86_64", H, "http://m/debian", "bookworm", (deb,))
    with pytest.raises(InputError) as caught:
        debian.fetch(lock)
    assert "tini 0.19.0-1 (amd64)" in caught.value.message and "no longer served by http://m/debian" in caught.value.message
    assert "invoke lock --refresh-base" in caught.value.hint
    assert not list(cache.debs().iterdir())


def test_the_installed_set_is_checked_against_the_lock():
    deb = debian.Deb("apt", "2.6.1", "amd64", H, "pool/a/apt_2.6.1_amd64.deb")
    lock = debian.DebLock("base/x", H, "http://m", "bookworm", (deb,))
    status = "Package: apt\nStatus: install ok installed\nVersion: 2.6.1\nArchitecture: amd64\n\n" \
             "Package: gawk\nStatus: install ok installed\nVersion: 5\nArchitecture: amd64\n"
    assert debian.differences(lock, debian.installed(status)) == ["gawk 5 installed but not locked"]
