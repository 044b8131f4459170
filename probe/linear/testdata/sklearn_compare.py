#!/usr/bin/python3
"""Reference linear probe with scikit-learn, for parity checks of probe/linear.

Reads <dir>/train_x.npy (float32 [n,d]), train_y.npy (int64 [n]), test_x.npy, test_y.npy,
standardises with the training rows' mean and population std (std 0 -> 1), fits
LogisticRegression(solver="lbfgs", multi_class="multinomial", C=C) and prints JSON with the test
accuracy, the objective C*sum(CE) + 0.5*||W||^2 (intercept unpenalised), the coefficients and the
intercepts. Run with Debian's python (apt-get install python3-sklearn):

    /usr/bin/python3 sklearn_compare.py DIR C [--tol 1e-10] [--max-iter 10000]
"""
import argparse
import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("C", type=float)
    ap.add_argument("--tol", type=float, default=1e-10)
    ap.add_argument("--max-iter", type=int, default=10000)
    ap.add_argument("--coef", action="store_true", help="include coefficients in the output")
    a = ap.parse_args()

    def load(name):
        return np.load(os.path.join(a.dir, name))

    xtr, ytr = load("train_x.npy").astype(np.float64), load("train_y.npy")
    xte, yte = load("test_x.npy").astype(np.float64), load("test_y.npy")
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)
    std[std == 0] = 1.0
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std

    clf = LogisticRegression(C=a.C, solver="lbfgs", multi_class="multinomial",
                             tol=a.tol, max_iter=a.max_iter)
    clf.fit(xtr, ytr)
    z = xtr @ clf.coef_.T + clf.intercept_
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    cls = {c: i for i, c in enumerate(clf.classes_)}
    ce = -logp[np.arange(len(ytr)), [cls[v] for v in ytr]].sum()
    out = {
        "sklearn_version": sklearn.__version__,
        "C": a.C,
        "n_iter": int(np.max(clf.n_iter_)),
        "test_acc": float((clf.predict(xte) == yte).mean()),
        "train_acc": float((clf.predict(xtr) == ytr).mean()),
        "sum_ce": float(ce),
        "objective_sklearn": float(a.C * ce + 0.5 * (clf.coef_ ** 2).sum()),
        "objective_ours": float(ce + 0.5 * (clf.coef_ ** 2).sum() / a.C),
    }
    if a.coef:
        out["coef"] = clf.coef_.tolist()
        out["intercept"] = clf.intercept_.tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
