#!/usr/bin/python3
"""Float64 references for `probe similarity` --method mutual-knn|cknna|svcca|procrustes|cka-angular.

An independent NumPy implementation of /work/shared/specs/similarity-more.md (itself pinned to
platonic-rep@dcd76ba metrics.py, netrep@0186b8a LinearMetric(alpha=1) and Williams et al. 2021's
arccos of linear CKA), written from the definitions with explicit n×n matrices in float64 — no
blocking, no screening, no float32 — so that it shares nothing with the Go code it checks.

It writes the fixtures into testdata/similarity/ (run from the repository root):
  features/*.npy         float32 arrays [n, d] of three "layers" and ids.txt: the Go test stores
                          them as one Parquet file (columns of one file); rows 7 and 8 repeat
                          rows 3 and 4 exactly (ties: the earlier row wins)
  vit.npy, vit.ids.txt   float32 [m, 40], a "foreign model", rows in another order, 20 of the
                          ids absent from the features and 15 extra ones
  vit64/dino.npy, vit64/ids.txt
                          float64 [m, 12] with `id<TAB>split` lines (probe export's layout), two
                          rows that differ from others by 1e-10 (float32 cannot tell them apart)
  clip/img_emb/img_emb_{0,1}.npy
                          float16 parts (clip-retrieval's dtype), ids in clip/ids_{0,1}.txt for
                          gen_clip_metadata.go, which writes clip/metadata/metadata_{0,1}.parquet
                          (then delete the ids_*.txt)
  wide/wide.npy           float32 [120, 300], more features than rows
  reference.json          the expected matrices of every method for each comparison (the last one with
                          vit.npy as --features against the clip folder)
Usage: /usr/bin/python3 tools/similarity/reference.py && go run testdata/similarity/gen_clip_metadata.go &&
  rm testdata/similarity/clip/ids_*.txt
"""
import json
import os

import numpy as np

OUT = "testdata/similarity"
K = 10
D = 10
rng = np.random.default_rng(20261208)


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_sets(x, k):
    """N(i): the k rows j != i with the largest x̂ᵢ·x̂ⱼ; exact ties to the lower row (stable sort)."""
    u = unit(x)
    s = u @ u.T
    np.fill_diagonal(s, -1e8)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, s


def mutual_knn(x, y, k=K):
    a, _ = knn_sets(x, k)
    b, _ = knn_sets(y, k)
    n = len(a)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(n)]))


def hsic_unbiased(a, b):
    """platonic-rep's hsic_unbiased: note B̃ᵀ in the first term."""
    m = a.shape[0]
    at, bt = a.copy(), b.copy()
    np.fill_diagonal(at, 0)
    np.fill_diagonal(bt, 0)
    v = np.sum(at * bt.T) + np.sum(at) * np.sum(bt) / ((m - 1) * (m - 2)) - 2 * np.sum(at @ bt) / (m - 2)
    return v / (m * (m - 3))


def cknna(x, y, k=K):
    ux, uy = unit(x), unit(y)
    kx, ly = ux @ ux.T, uy @ uy.T
    n = len(kx)

    def mask(g):
        h = g.copy()
        np.fill_diagonal(h, -np.inf)
        idx = np.argsort(-h, axis=1, kind="stable")[:, :k]
        m = np.zeros((n, n))
        m[np.arange(n)[:, None], idx] = 1
        return m

    mk, ml = mask(kx), mask(ly)
    m = mk * ml
    s_kl = hsic_unbiased(m * kx, m * ly)
    s_kk = hsic_unbiased(mk * kx, mk * kx)
    s_ll = hsic_unbiased(ml * ly, ml * ly)
    if s_kk * s_ll < 0:
        return None
    return float(s_kl / (np.sqrt(s_kk * s_ll) + 1e-6))


def svcca(x, y, dims=D):
    def basis(v):
        z = unit(v)
        z = z - z.mean(axis=0)
        z = z / (z.std(axis=0, ddof=1) + 1e-8)
        k = min(dims, z.shape[1], z.shape[0] - 1)
        u, _, _ = np.linalg.svd(z, full_matrices=False)
        return u[:, :k]

    ux, uy = basis(x), basis(y)
    rho = np.linalg.svd(ux.T @ uy, compute_uv=False)
    m = min(ux.shape[1], uy.shape[1])
    return float(np.clip(np.mean(rho[:m]), 0, 1))


def procrustes(x, y):
    xc = np.asarray(x, np.float64) - np.mean(x, axis=0, dtype=np.float64)
    yc = np.asarray(y, np.float64) - np.mean(y, axis=0, dtype=np.float64)
    nuc = np.linalg.svd(xc.T @ yc, compute_uv=False).sum()
    return float(np.arccos(np.clip(nuc / (np.linalg.norm(xc) * np.linalg.norm(yc)), -1, 1)))


def cka_angular(x, y):
    xc = np.asarray(x, np.float64) - np.mean(x, axis=0, dtype=np.float64)
    yc = np.asarray(y, np.float64) - np.mean(y, axis=0, dtype=np.float64)
    cka = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    return float(np.arccos(np.clip(cka, -1, 1)))


METHODS = {"mutual-knn": mutual_knn, "cknna": cknna, "svcca": svcca, "procrustes": procrustes, "cka-angular": cka_angular}


def matrices(cols_a, cols_b):
    return {name: [[fn(a, b) for b in cols_b] for a in cols_a] for name, fn in METHODS.items()}


def match(ids_a, ids_b):
    """Rows holding the same id, in the order of ids_a (the --features side)."""
    where = {s: j for j, s in enumerate(ids_b)}
    ra = [i for i, s in enumerate(ids_a) if s in where]
    return ra, [where[ids_a[i]] for i in ra]


def save(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(arr))


def main():
    n = 240
    # Three layers of one model: a shared 6-D latent, mixed and noised more with depth, in clusters
    # so that neighbourhoods mean something.
    centres = rng.normal(size=(12, 6))
    z = centres[rng.integers(0, 12, n)] + 0.6 * rng.normal(size=(n, 6))
    layers = {}
    for name, d, noise in [("block1_mean", 24, 0.3), ("block2_mean", 32, 0.6), ("decoder", 16, 1.0)]:
        w = rng.normal(size=(6, d))
        layers[name] = (z @ w + noise * rng.normal(size=(n, d)) + rng.normal(size=d)).astype(np.float32)
    for v in layers.values():  # exact duplicates: ties resolved to the earlier row
        v[7], v[8] = v[3], v[4]
    ids = [f"img/{i:04d}.png" for i in range(n)]
    for name, v in layers.items():
        save(f"{OUT}/features/{name}.npy", v)
    with open(f"{OUT}/features/ids.txt", "w") as f:
        f.writelines(f"{s}\ttrain\n" for s in ids)
    names = list(layers)
    cols = [layers[c] for c in names]

    ref = {"knn_k": K, "svcca_dims": D, "columns": names, "cases": {}}
    ref["cases"]["self"] = {"against_columns": names, "n": n, "matrix": matrices(cols, cols)}

    # A foreign model: a nonlinear function of the same latent; 20 of our ids missing, 15 extra rows,
    # rows shuffled.
    keep = sorted(rng.choice(n, n - 20, replace=False))
    zf = np.concatenate([z[keep], rng.normal(size=(15, 6))])
    fid = [ids[i] for i in keep] + [f"other/{i}.jpg" for i in range(15)]
    vit = (np.tanh(zf @ rng.normal(size=(6, 40))) + 0.2 * rng.normal(size=(len(zf), 40))).astype(np.float32)
    perm = rng.permutation(len(vit))
    vit, fid = vit[perm], [fid[p] for p in perm]
    save(f"{OUT}/vit.npy", vit)
    with open(f"{OUT}/vit.ids.txt", "w") as f:
        f.writelines(s + "\n" for s in fid)
    ra, rb = match(ids, fid)
    ref["cases"]["vit"] = {"against_columns": ["vit"], "n": len(ra),
                           "matrix": matrices([c[ra] for c in cols], [vit[rb]])}

    # float64, export's `id<TAB>split` layout in ids.txt, rows reversed, near-duplicates 1e-10 apart.
    dino = np.abs(z @ rng.normal(size=(6, 12))) + 0.1 * rng.normal(size=(n, 12))
    dino[20] = dino[10] + 1e-10 * rng.normal(size=12)
    dino[21] = dino[11] * (1 + 1e-10)
    order = np.arange(n)[::-1]
    dino, did = dino[order], [ids[i] for i in order]
    save(f"{OUT}/vit64/dino.npy", dino)
    with open(f"{OUT}/vit64/ids.txt", "w") as f:
        f.writelines(f"{s}\ttest\r\n" for s in did)
    ra, rb = match(ids, did)
    ref["cases"]["dino64"] = {"against_columns": ["dino"], "n": len(ra),
                              "matrix": matrices([c[ra] for c in cols], [dino[rb]])}

    # clip-retrieval: unit-normalised float16 embeddings in two parts, 130 + 100 rows, a few ids
    # absent.
    keep = sorted(rng.choice(n, 230, replace=False))
    emb = z[keep] @ rng.normal(size=(6, 48)) + 0.5 * rng.normal(size=(230, 48))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float16)
    cid = [ids[i] for i in keep]
    perm = rng.permutation(230)
    emb, cid = emb[perm], [cid[p] for p in perm]
    for s, (lo, hi) in enumerate([(0, 130), (130, 230)]):
        save(f"{OUT}/clip/img_emb/img_emb_{s}.npy", emb[lo:hi])
        with open(f"{OUT}/clip/ids_{s}.txt", "w") as f:
            f.writelines(c + "\n" for c in cid[lo:hi])
    ra, rb = match(ids, cid)
    ref["cases"]["clip"] = {"against_columns": ["img_emb"], "n": len(ra),
                            "matrix": matrices([c[ra] for c in cols], [emb.astype(np.float64)[rb]])}

    # Foreign on both sides: vit.npy as --features (its row order decides) against the clip folder.
    ra, rb = match(fid, cid)
    ref["cases"]["vit-vs-clip"] = {"features": "vit.npy", "against_columns": ["img_emb"], "n": len(ra),
                                   "matrix": matrices([vit[ra]], [emb.astype(np.float64)[rb]])}

    # Wider than it is long: 120 matched rows × 300 features (SVCCA's k = min(D, d, n − 1); the
    # Procrustes cross-product has rank < d).
    keep = sorted(rng.choice(n, 120, replace=False))
    wide = (np.sin(z[keep] @ rng.normal(size=(6, 300))) + 0.3 * rng.normal(size=(120, 300))).astype(np.float32)
    save(f"{OUT}/wide/wide.npy", wide)
    with open(f"{OUT}/wide/wide.ids.txt", "w") as f:
        f.writelines(ids[i] + "\n" for i in keep)
    ra, rb = match(ids, [ids[i] for i in keep])
    ref["cases"]["wide"] = {"against_columns": ["wide"], "n": len(ra),
                            "matrix": matrices([c[ra] for c in cols], [wide[rb]])}

    with open(f"{OUT}/reference.json", "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
