"""A plain Paddle training loop for a classification list, as a user would write it in 40 lines:
PaddleClas's model, numpy batches (shuffled every epoch, whole batches only), random horizontal
flips, Momentum with L2, a linear warm-up then a cosine (paddle.optimizer.lr), cross-entropy with
label smoothing, and top-1 on the validation list after every epoch. No piece of the engine is used.

python classification.py DATA MODEL_NAME EPOCHS BATCH LR WARMUP_EPOCHS L2 SMOOTHING SEED [EVERY]
prints one JSON line per evaluation (every EVERY epochs, default 1, and after the last):
{"epoch": e, "step": s, "top1": acc}."""
import json
import sys

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
from paddleclas.ppcls.arch import build_model

data, name = sys.argv[1], sys.argv[2]
epochs, batch, rate, warmup_epochs, l2, smoothing, seed = (int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]),
                                                           float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]),
                                                           int(sys.argv[9]))
every = int(sys.argv[10]) if len(sys.argv) > 10 else 1
MEAN, STD = np.array([0.485, 0.456, 0.406], "float32"), np.array([0.229, 0.224, 0.225], "float32")


def load(list_file):
    pairs = [line.split() for line in open(f"{data}/{list_file}").read().splitlines() if line.strip()]
    images = [(cv2.cvtColor(cv2.imread(f"{data}/{p}"), cv2.COLOR_BGR2RGB).astype("float32") / 255 - MEAN) / STD
              for p, _ in pairs]
    return np.stack(images).transpose(0, 3, 1, 2).astype("float32"), np.array([int(l) for _, l in pairs], "int64")


x_train, y_train = load("train_list.txt")
x_val, y_val = load("val_list.txt")
classes = int(max(y_train.max(), y_val.max())) + 1
paddle.seed(seed)
np.random.seed(seed)
model = build_model({"Arch": {"name": name, "class_num": classes}, "Global": {"device": "cpu"}})
per_epoch = len(x_train) // batch
total, warmup = epochs * per_epoch, int(round(warmup_epochs * per_epoch))
schedule = paddle.optimizer.lr.CosineAnnealingDecay(rate, T_max=max(1, total - warmup))
if warmup:
    schedule = paddle.optimizer.lr.LinearWarmup(schedule, warmup, 0.0, rate)
optimizer = paddle.optimizer.Momentum(schedule, momentum=0.9, parameters=model.parameters(),
                                      weight_decay=paddle.regularizer.L2Decay(l2))
step = 0
for epoch in range(1, epochs + 1):
    model.train()
    order = np.random.permutation(len(x_train))
    for start in range(0, per_epoch * batch, batch):
        pick = order[start:start + batch]
        images = x_train[pick].copy()
        flip = np.random.rand(len(pick)) < 0.5
        images[flip] = images[flip][..., ::-1]
        target = F.label_smooth(F.one_hot(paddle.to_tensor(y_train[pick]), classes), epsilon=smoothing)
        loss = F.cross_entropy(model(paddle.to_tensor(images)), target, soft_label=True)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        step += 1
    if epoch % every and epoch != epochs:
        continue
    model.eval()
    with paddle.no_grad():
        predicted = np.concatenate([model(paddle.to_tensor(x_val[i:i + 256])).numpy().argmax(-1)
                                    for i in range(0, len(x_val), 256)])
    print(json.dumps({"epoch": epoch, "step": step, "top1": float((predicted == y_val).mean())}), flush=True)
