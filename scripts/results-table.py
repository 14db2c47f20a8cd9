#!/usr/bin/env python3
"""Markdown tables of the runs written by scripts/paper-runs.sh, next to the paper's numbers.

    scripts/results-table.py [RUNS]      (default: runs)

Reads RUNS/<run>/test-metrics.json (`msnet eval --json`) and RUNS/<run>/baseline.json
(`msnet train --arch unet`); a group's numbers are the mean and sample standard deviation over
its seeds. Standard library only.
"""
import csv
import json
import re
import statistics
import sys
from pathlib import Path

# Table 2 (WBC, DSC_avg), Table 1 (REFUGE, DSC_avg), Table 3 (thigh MRI, DSC_avg): MSNET.md.
PAPER_WBC = {10: (0.8850, 0.8056), 30: (0.9537, 0.7911), 60: (0.9579, 0.8444)}
PAPER_REFUGE = {20: 0.8147, 50: 0.7904}
PAPER_MRI = {2: 0.7981, 3: 0.8858, 4: 0.9185}

RUN = re.compile(
    r"^(?P<group>[a-z0-9.-]+?)-s(?P<s>\d+)(?P<variant>-h1)?-seed(?P<seed>\d+)(?P<length>-\d+it)?$"
)


def load(runs):
    rows = []
    for d in sorted(Path(runs).iterdir()):
        m = RUN.match(d.name)
        if not m or not d.is_dir():
            continue
        for name in ("test-metrics.json", "baseline.json"):
            f = d / name
            if f.is_file():
                r = json.loads(f.read_text())
                group = m["group"] + (m["variant"] or "") + (m["length"] or "")
                rows.append((group, int(m["s"]), int(m["seed"]), r, d))
    return rows


def stat(values):
    if not values:
        return "—"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}"


def training_seconds(run_dir, r):
    if "training" in r:
        return r["training"]["seconds"]
    cfg = json.loads((run_dir / "config.json").read_text())
    return cfg["training"]["seconds"]


def metrics_table(rows, group, paper=None, extra=None):
    sel = [r for r in rows if r[0] == group]
    if not sel:
        return []
    head = "| S | seeds | Acc_avg | mIoU | DSC_avg | ASD_avg (px) | DSC_avg, foreground |"
    sep = "|---|---|---|---|---|---|---|"
    if paper:
        head += " paper DSC_avg |"
        sep += "---|"
    if extra:
        head += "".join(f" {name} |" for name, _ in extra)
        sep += "---|" * len(extra)
    head += " train s / run |"
    sep += "---|"
    out = [head, sep]
    for s in sorted({r[1] for r in sel}):
        rs = [r for r in sel if r[1] == s]
        col = lambda k, part="mean_all": stat([r[3][part][k] for r in rs])
        line = (
            f"| {s} | {','.join(str(r[2]) for r in rs)} | {col('acc')} | {col('iou')} | "
            f"{col('dsc')} | {col('asd')} | {col('dsc', 'mean_foreground')} |"
        )
        if paper:
            line += f" {paper(s)} |"
        for _, fn in extra or []:
            line += f" {fn(rs)} |"
        secs = statistics.fmean(training_seconds(r[4], r[3]) for r in rs)
        line += f" {secs:.0f} |"
        out.append(line)
    return out


def mean_foreground(row):
    """Mean DSC of the classes after the background (dsc_* columns but the first)."""
    classes = [float(v) for k, v in row.items() if k.startswith("dsc_")][1:]
    return statistics.fmean(classes)


def validation_curve(run_dir, value=lambda row: float(row["val_dsc"])):
    """{iteration: value(row)} of RUN_DIR/validation.csv; None if the run has none."""
    f = Path(run_dir) / "validation.csv"
    if not f.is_file():
        return None
    return {int(r["iteration"]): value(r) for r in csv.DictReader(f.read_text().splitlines())}


def pilot_curves(runs, pattern="pilot-*", column="val DSC_avg", value=lambda row: float(row["val_dsc"])):
    """`value` of each pilot run's validation rows (RUNS/PATTERN/validation.csv), a column per run."""
    curves = {}
    for d in sorted(Path(runs).glob(pattern)):
        c = validation_curve(d, value)
        if c is not None:
            curves[d.name] = c
    if not curves:
        return []
    names = list(curves)
    iterations = sorted({i for c in curves.values() for i in c})
    out = ["| iteration | " + " | ".join(f"{column}, {n}" for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for i in iterations:
        cells = [f"{curves[n][i]:.4f}" if i in curves[n] else "—" for n in names]
        out.append(f"| {i} | " + " | ".join(cells) + " |")
    return out


WBC_PILOT_SPLITS = ["s30-seed0", "s60-seed1"]


def arm_rule(runs, pilot, task, splits, arms, first, last, column="val_dsc"):
    """A pilot's rule: each arm's mean validation COLUMN at iterations FIRST-LAST on each
    split (runs RUNS/pilot-TASK-SPLIT-ARM), and their average. Returns {(split, arm): curve},
    or None while a run has no validation yet."""
    curves = {}
    for split in splits:
        for arm in arms:
            curve = validation_curve(Path(runs) / f"pilot-{task}-{split}-{arm}",
                                     lambda row: float(row[column]))
            if curve is None:
                return None
            curves[split, arm] = curve
    print(f"### {pilot}: the rule ({column})\n")
    print("| arm | " + " | ".join(f"mean at {first}-{last}, {s}" for s in splits) + " | average |")
    print("|---|" + "---|" * (len(splits) + 1))
    for arm in arms:
        means = [statistics.fmean(curves[s, arm].get(i, float("nan")) for i in range(first, last + 1, 100))
                 for s in splits]
        print(f"| {arm} | " + " | ".join(f"{m:.4f}" for m in means) + f" | {statistics.fmean(means):.4f} |")
    print()
    return curves


def wbc_schedule_rule(curves):
    """pilot-wbc-affine's schedule: the default arm's curve averaged over the splits (3-point
    running mean), and where it peaks."""
    common = sorted(set.intersection(*(set(curves[s, "default"]) for s in WBC_PILOT_SPLITS)))
    both = {i: statistics.fmean(curves[s, "default"][i] for s in WBC_PILOT_SPLITS) for i in common}
    smooth = {i: statistics.fmean(both[j] for j in (i - 100, i, i + 100))
              for i in common if i - 100 in both and i + 100 in both}
    top = f"{max(smooth.values()):.4f}"
    at = [str(i) for i, v in smooth.items() if f"{v:.4f}" == top]
    print("default arm, both splits, 3-point mean: "
          + ", ".join(f"{i}: {v:.4f}" for i, v in smooth.items() if i % 200 == 0)
          + f"; maximum {top} at {', '.join(at)}\n")


def schedule_rule(runs, pilot, run, candidates, column):
    """A schedule pilot's rule: each candidate schedule N scored by the mean validation COLUMN
    of RUNS/RUN's last five points up to N (N-400 to N); the highest is taken."""
    curve = validation_curve(Path(runs) / run, lambda row: float(row[column]))
    if curve is None:
        return
    print(f"### {pilot}: the rule ({column})\n")
    print("| iterations | mean of the last five points |")
    print("|---|---|")
    for n in candidates:
        points = [curve.get(i) for i in range(n - 400, n + 1, 100)]
        mean = "—" if None in points else f"{statistics.fmean(points):.4f}"
        print(f"| {n} | {mean} |")
    print()


def regions_rule(runs):
    """pilot-drishti-regions: the validation images scored with the argmax as it is and with one
    disc and one cup kept (RUNS/pilot-drishti-regions/ARM.json, `msnet eval --json`)."""
    arms = {}
    for arm in ["argmax", "largest-regions"]:
        f = Path(runs) / "pilot-drishti-regions" / f"{arm}.json"
        if not f.is_file():
            return
        arms[arm] = json.loads(f.read_text())
    print("### pilot-drishti-regions: the rule (validation images)\n")
    print("| arm | images | DSC disc | DSC cup | vCDR MAE | vCDR bias | vCDR r |")
    print("|---|---|---|---|---|---|---|")
    for arm, e in arms.items():
        v = e["vcdr"]
        print(f"| {arm} | {e['images']} | {e['regions']['disc (rim + cup)']['dsc']:.4f} | "
              f"{e['classes']['cup']['dsc']:.4f} | {v['mae']:.4f} | {v['bias']:+.4f} | {v['pearson_r']:.3f} |")
    changed = sum(a != b for a, b in zip(*(
        [(i["name"], i["classes"]) for i in e["per_image"]] for e in arms.values())))
    print(f"\nImages whose scores the cleanup changed: {changed}\n")


# pilot-acdc-augment's seed-0 `affine-strong` run (dt 0.5) ran before run records were kept in
# results/: its mean at 500-600 as docs/results.md gives it, used where its folder is absent.
ACDC_SEED0_DT05 = ("pilot-acdc-aug-affine-strong-seed0", 0.448)


def acdc_dt_rule(runs):
    """pilot-acdc-dt's rule: each dt's mean validation foreground DSC at 500, 550 and 600 on
    each split (runs RUNS/pilot-acdc-dtDT-SPLIT), and the average over s2 and seed0."""
    means = {}  # (split, dt) -> (mean, whether it comes from docs/results.md)
    for split in ["s2", "seed0", "s3"]:
        for dt in ["0.1", "0.5"]:
            docs = (split, dt) == ("seed0", "0.5")
            name = ACDC_SEED0_DT05[0] if docs else f"pilot-acdc-dt{dt}-{split}"
            curve = validation_curve(Path(runs) / name, mean_foreground)
            if curve is not None and all(i in curve for i in (500, 550, 600)):
                means[split, dt] = (statistics.fmean(curve[i] for i in (500, 550, 600)), False)
            elif docs:
                means[split, dt] = (ACDC_SEED0_DT05[1], True)
    if not any(dt == "0.1" for _, dt in means):
        return
    cell = lambda m: "—" if m is None else f"{m[0]:.3f} (docs)" if m[1] else f"{m[0]:.4f}"
    print("### pilot-acdc-dt: the rule (mean validation foreground DSC at 500-600)\n")
    print("| dt | S = 2 seed 1's volumes | seed-0 split | average | S = 3 seed 1's volumes (reported) |")
    print("|---|---|---|---|---|")
    for dt in ["0.1", "0.5"]:
        pair = [means.get((split, dt)) for split in ["s2", "seed0"]]
        average = "—" if None in pair else f"{statistics.fmean(m[0] for m in pair):.4f}"
        print(f"| {dt} | {cell(pair[0])} | {cell(pair[1])} | {average} | {cell(means.get(('s3', dt)))} |")
    print()


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs"
    rows = load(runs)
    for task, pattern in [("WBC", "pilot-wbc-*"), ("Drishti-GS1", "pilot-drishti-*")]:
        pilots = pilot_curves(runs, pattern)
        if pilots:
            print(f"### {task} pilots: DSC_avg of the held-out images\n")
            print("\n".join(pilots) + "\n")
    affine = arm_rule(runs, "pilot-wbc-affine", "wbc", WBC_PILOT_SPLITS, ["default", "affine"], 800, 1200)
    if affine:
        wbc_schedule_rule(affine)
    arm_rule(runs, "pilot-wbc-colour", "wbc", WBC_PILOT_SPLITS, ["default", "colour"], 1600, 2000)
    arm_rule(runs, "pilot-wbc-optimiser", "wbc", WBC_PILOT_SPLITS, ["default", "lr5e-4", "batch8"],
             1600, 2000)
    arm_rule(runs, "pilot-wbc-loss", "wbc", WBC_PILOT_SPLITS, ["lr5e-4", "lr5e-4-dicece"], 1600, 2000)
    arm_rule(runs, "pilot-wbc-eps", "wbc", WBC_PILOT_SPLITS, ["lr5e-4-eps4", "lr5e-4-eps16"], 1600, 2000)
    arm_rule(runs, "pilot-wbc-init", "wbc", WBC_PILOT_SPLITS, ["lr5e-4-gain1.5-out4.5", "lr5e-4-out9"],
             1600, 2000)
    arm_rule(runs, "pilot-drishti-upright", "drishti", ["s50"],
             ["default", "upright", "default-eps16", "upright-eps16"], 1100, 1500, "dsc_cup")
    arm_rule(runs, "pilot-drishti-loss", "drishti", ["s50"], ["upright-eps16", "upright-eps16-dicece"],
             1100, 1500, "dsc_cup")
    arm_rule(runs, "pilot-drishti-mirror", "drishti", ["s50"],
             ["upright-eps16-dicece", "mirror-eps16-dicece", "upright-affine-eps16-dicece",
              "mirror-affine-eps16-dicece"], 1100, 1500, "dsc_cup")
    regions_rule(runs)
    schedule_rule(runs, "pilot-drishti-schedule", "pilot-drishti-s50-upright-eps16-long",
                  [1500, 2000, 2500, 3000], "dsc_cup")
    acdc_dt_rule(runs)
    acdc_pilots = pilot_curves(runs, "pilot-acdc-*", "val foreground DSC", mean_foreground)
    if acdc_pilots:
        print("### ACDC pilots: mean foreground DSC of the held-out volumes\n")
        print("\n".join(acdc_pilots) + "\n")
    if not rows:
        sys.exit(f"results-table: no finished runs in {runs}")
    cdr = lambda rs: stat([r[3]["vcdr"]["mae"] for r in rs])
    disc = lambda rs: stat([r[3]["regions"]["disc (rim + cup)"]["dsc"] for r in rs])
    cup = lambda rs: stat([r[3]["classes"]["cup"]["dsc"] for r in rs])
    # Bias (predicted - experts) and Pearson's r, recorded by `msnet eval` since 2026-12-04.
    cdr_of = lambda key: lambda rs: stat([r[3]["vcdr"][key] for r in rs if r[3]["vcdr"].get(key) is not None])
    fundus = [("DSC disc", disc), ("DSC cup", cup), ("vCDR MAE", cdr),
              ("vCDR bias", cdr_of("bias")), ("vCDR r", cdr_of("pearson_r"))]
    wbc = lambda s: f"{PAPER_WBC[s][0]:.4f}"
    refuge = lambda s: f"{PAPER_REFUGE[s]:.4f} (REFUGE)"
    mri = lambda s: f"{PAPER_MRI[s]:.4f} (thigh MRI)"
    params = {r[3]["network"]["parameters"] for r in rows if r[0] in ("unet-wbc", "unet-noaug-wbc")}
    unet_note = f"Parameters: {', '.join(str(p) for p in sorted(params))} (the paper's U-Net: 31M).\n\n"
    # (title, note above the table, group, paper column, extra columns); groups without
    # finished runs are left out.
    sections = [
        ("### WBC Dataset 1: MSNet", "", "wbc", wbc, None),
        ("The same at lr 5e-4 (chosen by pilot-wbc-optimiser; runs `wbc-lr5e-4-*`):", "",
         "wbc-lr5e-4", wbc, None),
        ("The same runs continued to 400 iterations (`longer`; the training time counts all 400):",
         "", "wbc-400it", wbc, None),
        ("### WBC Dataset 1: U-Net baseline (same trainer, split, loss and schedule)",
         unet_note, "unet-wbc", lambda s: f"{PAPER_WBC[s][1]:.4f}", None),
        ("The U-Net runs of 2026-12-06 before the baseline honoured `--augment` (trained without "
         "augmentation; runs `unet-noaug-wbc-*`):", "", "unet-noaug-wbc",
         lambda s: f"{PAPER_WBC[s][1]:.4f}", None),
        ("### WBC Dataset 1, S = 10: a single grid (H = 1) against the V-cycle (H = 5)",
         "", "wbc-h1", None, None),
        ("### Drishti-GS1 optic disc and cup (51 official test images)", "", "drishti", refuge,
         fundus),
        ("The same at half the learning rate (5e-4):", "", "drishti-lr0.0005", refuge, fundus),
        ("Without quarter turns, at ε = 16 (chosen by pilot-drishti-upright; runs "
         "`drishti-upright-*`):", "", "drishti-upright", refuge, fundus),
        ("The same with the pixel cross-entropy added to the soft Dice (chosen by pilot-drishti-loss; "
         "runs `drishti-upright-dicece-*`):", "", "drishti-upright-dicece", refuge, fundus),
        ("With left-right flips alone and a mild zoom and rotation (chosen by pilot-drishti-mirror; "
         "runs `drishti-mirror-affine-dicece-*`):", "", "drishti-mirror-affine-dicece", refuge, fundus),
        ("### ACDC 3D (4 classes, 20 test volumes of 10 patients)", "", "acdc", mri, None),
        ("The same at half the learning rate (5e-4):", "", "acdc-lr0.0005", mri, None),
        ("The same with augmentation (`ACDC_AUGMENT`):", "", "acdc-aug", mri, None),
        ("The same with the smoother's step dt 0.1 (`ACDC_DT`, pilot-acdc-dt; runs "
         "`acdc-aug-dt0.1-*`):", "", "acdc-aug-dt0.1", mri, None),
    ]
    for title, note, group, paper, extra in sections:
        table = metrics_table(rows, group, paper, extra)
        if table:
            print(f"{title}\n\n{note}" + "\n".join(table) + "\n")

if __name__ == "__main__":
    main()
