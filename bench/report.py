#!/usr/bin/env python3
"""Turns bench/run.sh's raw measurements into results.json, results.md and results.svg.

Standard library only. Input: raw.jsonl, one JSON object per line with a "kind":
  floor  {op: read|write, cache, bytes, wall_s, ...}   the I/O floor's parts
  run    {tool, method, inputs, threads, cache, status, wall_s, peak_rss_kb, cpu_pct,
          input_bytes, output_bytes, estimate_bytes, load1, ...}   one merge (inputs:
          fine_tune or unrelated; estimate_bytes: the planner's peak memory estimate)
  skip   {tool?, method, reason}                         a method not run, and why
  meta   {key, value}                                    e.g. mergekit's version

For a merge, floor_s = input_bytes / warm (or cold) read rate + output_bytes / write rate, and
ratio = wall_s / floor_s (1.0 would be a merge as fast as reading and copying the bytes).
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

# Issue 21's targets: ratio to the I/O floor per method group on fine-tune-like inputs, any
# method on unrelated inputs, peak RSS, and how close the planner's memory estimate must be.
RATIO_TARGET_FAST = 1.2
RATIO_TARGET_OTHER = 1.5
RATIO_TARGET_UNRELATED = 3.0
FAST_METHODS = {"linear", "task_arithmetic", "passthrough", "slerp", "nuslerp", "multislerp", "karcher"}
RSS_TARGET_MIB = 64
ESTIMATE_TOLERANCE = 0.2
INPUT_KINDS = ("fine_tune", "unrelated")


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(work, llmerge):
    info = {}
    for line in sh("lscpu").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "Flags"):
            info[key.strip()] = value.strip()
    flags = set(info.get("Flags", "").split())
    simd = [f for f in ("sse4_2", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16") if f in flags]
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = next((int(l.split()[1]) for l in meminfo.splitlines() if l.startswith("MemTotal")), 0)
    df = sh("df", "-hT", str(work)).splitlines()
    disk = " ".join(df[1].split()[:3]) if len(df) > 1 else ""
    device = df[1].split()[0] if len(df) > 1 else ""
    rota = sh("lsblk", "-dno", "ROTA", device) if device.startswith("/dev/") else ""
    os_name = ""
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    build_dir = Path(llmerge).resolve().parent.parent
    build_type = ""
    cache = build_dir / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1]
    repo = Path(__file__).resolve().parent.parent
    commit = sh("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    if commit and sh("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "src"):
        commit += " (src modified)"
    return {
        "cpu": info.get("Model name", platform.processor()),
        "simd": " ".join(simd),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024**2, 1),
        "disk": disk + ({"0": " (SSD/virtual)", "1": " (rotational)"}.get(rota, "")),
        "kernel": platform.release(),
        "os": os_name,
        "llmerge_version": sh(llmerge, "--version"),
        "llmerge_build_type": build_type,
        "git_commit": commit,
    }


def load_raw(path):
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"report.py: {path}:{n}: not JSON ({e}): {line[:120]}")
    return rows


def rate(floor, op, cache):
    for f in floor:
        if f["op"] == op and f["cache"] == cache and f["wall_s"] > 0:
            return f["bytes"] / f["wall_s"]
    return None


def analyse(rows):
    floor = [r for r in rows if r["kind"] == "floor"]
    read_warm, read_cold, write = rate(floor, "read", "warm"), rate(floor, "read", "cold"), rate(floor, "write", "warm")
    runs = []
    for r in (r for r in rows if r["kind"] == "run"):
        r = dict(r)
        r.setdefault("inputs", "fine_tune")
        if r["status"] == "ok":
            read = read_cold if r["cache"] == "cold" else read_warm
            r["floor_s"] = r["input_bytes"] / read + r["output_bytes"] / write
            # Time to an output on disk: mergekit's own time plus the fsync it skips.
            r["time_s"] = r["wall_s"] + r.get("flush_s", 0.0)
            r["ratio"] = r["time_s"] / r["floor_s"]
            if r.get("wall_median_s") is not None:
                r["ratio_median"] = (r["wall_median_s"] + r.get("flush_s", 0.0)) / r["floor_s"]
            r["input_gbps"] = r["input_bytes"] / r["time_s"] / 1e9
            r["peak_rss_mib"] = r["peak_rss_kb"] / 1024 if r.get("peak_rss_kb") is not None else None
            est = r.get("estimate_bytes")
            r["estimate_mib"] = est / 2**20 if est is not None else None
            if r.get("output_elements") and r.get("cpu_s") is not None:
                r["cpu_ns_per_element"] = r["cpu_s"] * 1e9 / r["output_elements"]
                r["wall_ns_per_element"] = r["wall_s"] * 1e9 / r["output_elements"]
            if est is not None and r["peak_rss_mib"]:
                r["estimate_ratio"] = r["estimate_mib"] / r["peak_rss_mib"]
        runs.append(r)
    return {
        "floor": floor,
        "rates_gbps": {
            "read_warm": read_warm / 1e9 if read_warm else None,
            "read_cold": read_cold / 1e9 if read_cold else None,
            "write": write / 1e9 if write else None,
        },
        "runs": runs,
        "skips": [r for r in rows if r["kind"] == "skip"],
        "callgrind": [r for r in rows if r["kind"] == "callgrind"],
        "meta": {r["key"]: r["value"] for r in rows if r["kind"] == "meta"},
    }


def find(runs, tool, method, threads=None, cache="warm", inputs="fine_tune"):
    for r in runs:
        if (r["tool"] == tool and r["method"] == method and r["cache"] == cache
                and r.get("inputs", "fine_tune") == inputs):
            if threads is None or r["threads"] == threads:
                return r
    return None


def fmt(x, spec=".2f", none="–"):
    return none if x is None else format(x, spec)


def markdown(res, args):
    m, runs, cores = res["machine"], res["runs"], res["machine"]["cores"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    rates = res["rates_gbps"]
    loads = [r["load1"] for r in runs if r.get("load1") is not None]
    out = [
        f"# llmerge benchmark: `{args.size}`",
        "",
        "Generated by `bench/run.sh` (do not edit by hand). Reproduce with:",
        "",
        "```sh",
        f"{args.command}",
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']} ({m['simd']}) |",
        f"| cores | {m['cores']} |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| disk (work dir) | {m['disk']} |",
        f"| kernel / OS | {m['kernel']} / {m['os']} |",
        f"| llmerge | {m['llmerge_version']}, {m['llmerge_build_type'] or 'unknown'} build, commit {m['git_commit']} |",
        f"| load average (1 min) during runs | {fmt(min(loads), '.1f')} to {fmt(max(loads), '.1f')} |" if loads else "| load average | – |",
    ]
    for key, label in (("uptime_start", "`uptime` at the start"), ("uptime_end", "`uptime` at the end")):
        if key in res["meta"]:
            out.append(f"| {label} | {res['meta'][key]} |")
    if "mergekit_version" in res["meta"]:
        reused = res["meta"].get("mergekit_reused")
        note = f"; its rows are from an earlier run on the same models ({reused})" if reused else ""
        out.append(f"| mergekit | {res['meta']['mergekit_version']} (CPU){note} |")
    out += [
        "",
        f"Models: llama-shaped bf16 models made with `llmerge synth {args.synth}`: a base, two "
        "fine-tunes of it (`--like base --delta-scale 0.01`; the *fine-tune-like* inputs, task "
        "vectors of a few bf16 ulps) and two independent random models (seeds 11 and 12; the "
        "*unrelated* inputs, task vectors as wide as the weights).",
        "",
        "## I/O floor",
        "",
        "| operation | bytes | seconds | GB/s | command |",
        "|---|---:|---:|---:|---|",
    ]
    for f in res["floor"]:
        gbps = f["bytes"] / f["wall_s"] / 1e9 if f["wall_s"] > 0 else None
        label = f"{f['op']} ({f['cache']} cache)" if f["op"] == "read" else "write + fsync"
        out.append(f"| {label} | {f['bytes']:,} | {f['wall_s']:.2f} | {fmt(gbps)} | `{f['command']}` |")
    out += [
        "",
        "Cold reads evict the inputs' pages first (`dd iflag=nocache count=0`, i.e. "
        "POSIX_FADV_DONTNEED per file; no root needed). A merge's floor is its input bytes at the "
        "warm read rate plus its output bytes at the write rate; ratio = wall time / floor. "
        "Warm runs start with the inputs in the page cache.",
        "",
        "## Summary",
        "",
        f"| method | llmerge s ({cores} threads) | ratio to floor | target | peak RSS MiB | "
        "1 thread s | speed-up 1→" + str(cores) + " | mergekit s | mergekit ratio | mergekit RSS MiB | "
        "llmerge faster by | RSS ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in methods:
        a = find(runs, "llmerge", method, cores)
        one = find(runs, "llmerge", method, 1) if cores > 1 else None
        mk = find(runs, "mergekit", method)
        ok = lambda r: r is not None and r["status"] == "ok"
        target = RATIO_TARGET_FAST if method in FAST_METHODS else RATIO_TARGET_OTHER
        cells = [method]
        if ok(a):
            met = "✓" if a["ratio"] <= target else "✗"
            cells += [f"{a['wall_s']:.2f}", f"{a['ratio']:.2f}", f"≤ {target} {met}", fmt(a["peak_rss_mib"], ".0f")]
        else:
            cells += [a["status"] if a else "–", "–", f"≤ {target}", "–"]
        if ok(one) and ok(a):
            cells += [f"{one['wall_s']:.2f}", f"{one['wall_s'] / a['wall_s']:.2f}×"]
        else:
            cells += [one["status"] if one else "–", "–"]
        if ok(mk):
            cells += [f"{mk['time_s']:.2f}", f"{mk['ratio']:.2f}", fmt(mk["peak_rss_mib"], ".0f")]
            if ok(a):
                cells += [f"{mk['time_s'] / a['wall_s']:.1f}×", f"{a['peak_rss_kb'] / mk['peak_rss_kb']:.3f}"]
            else:
                cells += ["–", "–"]
        else:
            cells += [mk["status"] if mk else "–", "–", "–", "–", "–"]
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        f"Targets (issue 21): on fine-tune-like inputs ratio ≤ {RATIO_TARGET_FAST} for "
        f"{', '.join(sorted(FAST_METHODS))}, ≤ {RATIO_TARGET_OTHER} for the others; on unrelated "
        f"inputs ≤ {RATIO_TARGET_UNRELATED} for every method; peak RSS ≤ {RSS_TARGET_MIB} MiB. "
        "\"RSS ratio\" is llmerge's peak RSS over mergekit's (goal ≤ 0.1). " + mergekit_flush_note(runs),
        "",
    ]
    out += inputs_table(runs, cores)
    out += targets_summary(runs, cores)
    missed = []
    for method in methods:
        a = find(runs, "llmerge", method, cores)
        target = RATIO_TARGET_FAST if method in FAST_METHODS else RATIO_TARGET_OTHER
        for kind, limit in (("fine_tune", target), ("unrelated", RATIO_TARGET_UNRELATED)):
            a = find(runs, "llmerge", method, cores, inputs=kind)
            if a is None or a["status"] != "ok" or a["ratio"] <= limit or not a.get("cpu_s"):
                continue
            cpu_wall = a["cpu_s"] / cores  # the run's CPU work, perfectly spread over every core
            # Cores at which that CPU work alone, perfectly spread, fits the target.
            needed = math.ceil(a["cpu_s"] / (limit * a["floor_s"]))
            missed.append(f"| {method} | {kind} | {a['ratio']:.2f} | ≤ {limit} | {a['cpu_s']:.1f} | "
                          f"{cpu_wall:.2f} | {cpu_wall / a['floor_s']:.2f} | {needed} | "
                          f"⌈{a['cpu_s']:.2f} / ({limit} × {a['floor_s']:.2f})⌉ |")
    if missed:
        out += [
            "### Where a target is missed",
            "",
            f"The CPU time of the run (user + system), spread perfectly over the {cores} cores, "
            "against the I/O floor: where that alone exceeds the target, the method is "
            "compute-bound on this machine, and more cores (or less work per element, see "
            "`methods_bench` below) is what would close the gap. \"Cores for the target\" is the "
            "core count at which that CPU time, spread perfectly, fits the target (the floor "
            "staying the same); where it is at most the cores present, the run lost its time to "
            "something else (waiting on the disk or on a busy machine: see CPU % and load1).",
            "",
            f"| method | inputs | ratio | target | CPU s | CPU s / {cores} cores | that / floor | "
            "cores for the target | = ⌈CPU s / (target × floor s)⌉ |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
            *missed,
            "",
        ]
    out += [
        "## Every run",
        "",
        "CPU s is user + system time: on a busy machine it shows the work done better than the wall "
        "time does (CPU % below 100 × threads with a high load1 means the run waited for a core, "
        "not necessarily for the disk).",
        "",
        "| tool | method | inputs | threads | cache | status | wall s | flush s | input GB | input GB/s | "
        "floor s | ratio | peak RSS MiB | estimate MiB | CPU % | CPU s | load1 |",
        "|---|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        out.append(
            f"| {r['tool']} | {r['method']} | {r['inputs']} | {r['threads']} | {r['cache']} | {r['status']} | "
            f"{r['wall_s']:.2f} | {fmt(r.get('flush_s'))} | {r['input_bytes'] / 1e9:.2f} | {fmt(r.get('input_gbps'))} | "
            f"{fmt(r.get('floor_s'))} | {fmt(r.get('ratio'))} | {fmt(r.get('peak_rss_mib'), '.0f')} | "
            f"{fmt(r.get('estimate_mib'), '.0f')} | "
            f"{fmt(r.get('cpu_pct'), 'd')} | {fmt(r.get('cpu_s'), '.1f')} | {fmt(r.get('load1'), '.1f')} |"
        )
    if res["skips"]:
        out += ["", "## Not run", ""]
        for s in res["skips"]:
            out.append(f"- {s.get('tool', 'all')} `{s['method']}`: {s['reason']}")
    if res.get("kernels"):
        out += kernel_table(res["kernels"])
    if res.get("methods_bench"):
        out += methods_table(res["methods_bench"])
    if res.get("callgrind"):
        out += callgrind_table(res["callgrind"], res["meta"].get("callgrind_synth"))
    if res.get("notes"):
        out += ["", res["notes"].rstrip()]
    out += ["", "![ratio to the I/O floor](results.svg)", ""]
    return "\n".join(out)


def mergekit_flush_note(runs):
    mk = [r for r in runs if r["tool"] == "mergekit" and r["status"] == "ok"]
    if not mk:
        return ""
    if all("flush_s" in r for r in mk):
        return ("mergekit does not fsync its output and llmerge does, so mergekit's time here is its "
                "wall time plus a timed `sync` of its output files (\"flush s\" below).")
    if any("flush_s" in r for r in mk):
        return ("mergekit does not fsync its output and llmerge does: where \"flush s\" is shown below, "
                "mergekit's time is its wall time plus a timed `sync` of its output files; the other "
                "mergekit rows (from a run that did not time the flush) leave out up to one write "
                "floor of disk time.")
    return ("Caveat: mergekit does not fsync its output and llmerge does; these mergekit rows come "
            "from a run that did not time that flush, so mergekit's times leave out up to one "
            "write floor of disk time.")


def inputs_table(runs, cores):
    """Both input kinds side by side: ratio, peak RSS and the planner's estimate per method."""
    methods = list(dict.fromkeys(r["method"] for r in runs if r["tool"] == "llmerge"))
    kinds = [k for k in INPUT_KINDS if any(r.get("inputs") == k for r in runs)]
    if len(kinds) < 2 and all(r.get("estimate_bytes") is None for r in runs):
        return []
    out = ["### Both input kinds, and the memory estimate", "",
           f"{cores} threads, warm inputs. Estimate: `llmerge plan --json`'s `peak_memory_estimate` "
           f"at the same thread count; it should be within {ESTIMATE_TOLERANCE:.0%} of the peak RSS "
           f"(estimate / peak in 1 ± {ESTIMATE_TOLERANCE}).", "",
           "Ratio: the fastest of the repeats, and in brackets their median.", "",
           "CPU ns / element: the run's CPU seconds (user + system, both threads) per output "
           "element, which the machine's load moves much less than the wall time.", "",
           "| method | " + " | ".join(f"{k} ratio | {k} peak RSS MiB | estimate MiB | estimate / peak"
                                       f" | {k} CPU ns / element" for k in kinds) + " |",
           "|---|" + "---:|---:|---:|---:|---:|" * len(kinds)]
    for method in methods:
        cells = [method]
        for kind in kinds:
            a = find(runs, "llmerge", method, cores, inputs=kind)
            if a is None or a["status"] != "ok":
                cells += [a["status"] if a else "–", "–", "–", "–", "–"]
                continue
            limit = RATIO_TARGET_UNRELATED if kind == "unrelated" else (
                RATIO_TARGET_FAST if method in FAST_METHODS else RATIO_TARGET_OTHER)
            ratio_ok = "✓" if a["ratio"] <= limit else "✗"
            rss_ok = "✓" if (a.get("peak_rss_mib") or 0) <= RSS_TARGET_MIB else "✗"
            er = a.get("estimate_ratio")
            est_ok = "" if er is None else (" ✓" if abs(er - 1) <= ESTIMATE_TOLERANCE else " ✗")
            median = f" ({a['ratio_median']:.2f})" if a.get("ratio_median") is not None else ""
            cells += [f"{a['ratio']:.2f}{median} {ratio_ok}", f"{fmt(a.get('peak_rss_mib'), '.0f')} {rss_ok}",
                      fmt(a.get("estimate_mib"), ".0f"), fmt(er) + est_ok,
                      fmt(a.get("cpu_ns_per_element"), ".1f")]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def targets_summary(runs, cores):
    """Issue 21's targets, one line each: how many methods and input kinds meet it, and which not."""
    ok = [r for r in runs if r["tool"] == "llmerge" and r["status"] == "ok" and r["cache"] == "warm"
          and r["threads"] == cores]
    if not ok:
        return []
    def line(name, rows, test):
        missed = [f"{r['method']} ({r['inputs']})" for r in rows if not test(r)]
        verdict = "met" if not missed else "not met: " + ", ".join(missed)
        return f"- {name}: {len(rows) - len(missed)} of {len(rows)} runs; {verdict}"
    fine = [r for r in ok if r["inputs"] == "fine_tune"]
    fast = [r for r in fine if r["method"] in FAST_METHODS]
    other = [r for r in fine if r["method"] not in FAST_METHODS]
    unrelated = [r for r in ok if r["inputs"] == "unrelated"]
    with_est = [r for r in ok if r.get("estimate_ratio") is not None]
    return [
        f"### Targets ({cores} threads, this run)", "",
        line(f"fine-tune-like inputs, ratio ≤ {RATIO_TARGET_FAST}", fast, lambda r: r["ratio"] <= RATIO_TARGET_FAST),
        line(f"fine-tune-like inputs, ratio ≤ {RATIO_TARGET_OTHER}", other, lambda r: r["ratio"] <= RATIO_TARGET_OTHER),
        line(f"unrelated inputs, ratio ≤ {RATIO_TARGET_UNRELATED}", unrelated,
             lambda r: r["ratio"] <= RATIO_TARGET_UNRELATED),
        line(f"peak RSS ≤ {RSS_TARGET_MIB} MiB", ok, lambda r: (r.get("peak_rss_mib") or 0) <= RSS_TARGET_MIB),
        line(f"estimate within {ESTIMATE_TOLERANCE:.0%} of the peak RSS", with_est,
             lambda r: abs(r["estimate_ratio"] - 1) <= ESTIMATE_TOLERANCE),
        line("estimate ≥ peak RSS (an upper bound)", with_est, lambda r: r["estimate_ratio"] >= 1),
        "",
    ]


def methods_table(benchmarks):
    """One row per method, a column pair per input kind: compute cost per element with no I/O."""
    out = ["", "## Methods on one tensor (`methods_bench`)", "",
           "Each method merges one 2048 × 8192 tensor (a base and two more models, bf16-rounded, "
           "f32 in memory) through the executor's chunk protocol on one thread, with no I/O: the "
           "compute an end-to-end run pays on top of reading and writing. ns per element is CPU time "
           "per output element, all models together; reads is how many times the method reads its "
           "inputs (statistics passes + 1; an end-to-end run loads every input that often). "
           "fine_tune: the models are the base plus a few ulps; unrelated: three independent "
           "uniform weights.", "",
           "| method | fine_tune ns per element | reads | unrelated ns per element | reads |",
           "|---|---:|---:|---:|---:|"]
    rows = {}
    for b in benchmarks:
        kind, _, name = b["name"].removeprefix("bm_method/").rpartition("/")
        per_element = 1e9 / b["items_per_second"] if b.get("items_per_second") else None
        rows.setdefault(name, {})[kind or "fine_tune"] = (per_element, b.get("reads"))
    for name, kinds in rows.items():
        cells = [name]
        for kind in INPUT_KINDS:
            per_element, reads = kinds.get(kind, (None, None))
            cells += [fmt(per_element, ".1f"), fmt(reads, ".0f")]
        out.append("| " + " | ".join(cells) + " |")
    return out


def callgrind_table(rows, synth=None):
    """Instructions per output element from `run.sh --callgrind`: whole runs, load-independent."""
    on = f" on models made with `llmerge synth {synth}`" if synth else ""
    out = ["", "## Instructions per output element (`--callgrind`)", "",
           f"Each method once more at `--threads 1` under `valgrind --tool=callgrind`{on}: every "
           "instruction of the whole `llmerge run` (reading, converting, merging, writing), divided "
           "by the output's element count. Unlike the times above it does not depend on how busy "
           "the machine was.", "",
           "| method | fine_tune instructions per element | unrelated instructions per element |",
           "|---|---:|---:|"]
    per = {}
    for r in rows:
        if r.get("elements"):
            per.setdefault(r["method"], {})[r["inputs"]] = r["instructions"] / r["elements"]
    for method, kinds in per.items():
        out.append(f"| {method} | " + " | ".join(fmt(kinds.get(k), ".1f") for k in INPUT_KINDS) + " |")
    return out


def kernel_table(kernels):
    """One row per kernel: SIMD and scalar GB/s at each size, memcpy of the same bytes first."""
    rates, sizes, names = {}, [], []
    for b in kernels:
        name, _, n = b["name"].removeprefix("bm_").rpartition("/")
        impl = "simd"
        for suffix in ("_simd", "_scalar"):
            if name.endswith(suffix):
                name, impl = name[: -len(suffix)], suffix[1:]
                break
        rates[name, impl, n] = b.get("bytes_per_second", 0) / 1e9
        sizes += [n] if n not in sizes else []
        names += [name] if name not in names else []
    label = lambda n: f"{int(n) // 1024} Ki" if int(n) % 1024 == 0 else n
    out = ["", "## Kernel micro-benchmarks (`kernels_bench`)", "",
           "GB/s per CPU-second, counting bytes read plus bytes written (memcpy of n floats: 8n "
           "bytes). Sizes in elements: 4 Ki f32 fit in L1, 64 Ki in L2 (the executor's default "
           "chunk), 1024 Ki is past L2. Each cell: SIMD / scalar twin.", "",
           "| kernel | " + " | ".join(label(n) for n in sizes) + " |",
           "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = []
        for n in sizes:
            simd, scalar = rates.get((name, "simd", n)), rates.get((name, "scalar", n))
            cells.append(fmt(simd, ".1f") if scalar is None else f"{fmt(simd, '.1f')} / {fmt(scalar, '.1f')}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def svg(res, cores):
    """Bars of the ratio to the floor per method (log scale): llmerge and mergekit side by side."""
    runs = res["runs"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    series = [("llmerge", cores, "#2b6cb0"), ("mergekit", None, "#dd6b20"),
              ("llmerge unrelated", cores, "#68a063")]
    values = {}
    for method in methods:
        for tool, threads, _ in series:
            kind = "unrelated" if tool.endswith(" unrelated") else "fine_tune"
            r = find(runs, tool.split()[0], method, threads, inputs=kind)
            values[method, tool] = r["ratio"] if r and r["status"] == "ok" else None
    present = [v for v in values.values() if v]
    top = max([2.0] + present) * 1.3
    import math

    ticks = [t for t in (1, 1.2, 1.5, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if t <= top]
    left, right, top_pad, bottom = 50, 40, 50, 95
    group = 72
    width = max(640, left + right + group * max(1, len(methods)))
    height = 360
    plot_h = height - top_pad - bottom
    y = lambda v: top_pad + plot_h * (1 - math.log(max(v, 0.5) / 0.5) / math.log(top / 0.5))
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="11">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="10" y="18" font-size="13">Wall time / I/O floor (log scale, lower is better)</text>',
         f'<text x="10" y="34" fill="#555">1 = as fast as reading the inputs and writing the output; '
         f'dashed: targets {RATIO_TARGET_FAST} and {RATIO_TARGET_OTHER}</text>']
    for t in ticks:
        dash = ' stroke-dasharray="4 3"' if t in (1.2, 1.5) else ""
        color = "#000" if t == 1 else "#ccc"
        s.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{color}"{dash}/>')
        if not dash:
            s.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, method in enumerate(methods):
        x0 = left + i * group + 8
        for j, (tool, _, color) in enumerate(series):
            v = values[method, tool]
            x = x0 + j * 20
            if v is None:
                s.append(f'<text x="{x + 9}" y="{y(1) - 4:.1f}" text-anchor="middle" fill="#777" '
                         f'font-size="9">n/a</text>')
                continue
            s.append(f'<rect x="{x}" y="{y(v):.1f}" width="18" height="{y(0.5) - y(v):.1f}" fill="{color}"/>')
            s.append(f'<text x="{x + 9}" y="{y(v) - 3:.1f}" text-anchor="middle" font-size="9">{v:.2f}</text>' if v < 10 else
                     f'<text x="{x + 9}" y="{y(v) - 3:.1f}" text-anchor="middle" font-size="9">{v:.0f}</text>')
        s.append(f'<text transform="translate({x0 + 20},{height - bottom + 12}) rotate(35)">{method}</text>')
    for j, (tool, threads, color) in enumerate(series):
        label = f"{tool} ({threads} threads)" if threads else tool
        lx = left + j * 200
        s.append(f'<rect x="{lx}" y="{height - 18}" width="12" height="12" fill="{color}"/>')
        s.append(f'<text x="{lx + 16}" y="{height - 8}">{label}</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--llmerge", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--synth", default="")
    p.add_argument("--command", default="bench/run.sh")
    p.add_argument("--kernels", help="Google Benchmark JSON output of kernels_bench")
    p.add_argument("--methods-bench", help="Google Benchmark JSON output of methods_bench")
    p.add_argument("--notes", help="Markdown appended to results.md as written (bench/notes.md)")
    args = p.parse_args()

    res = analyse(load_raw(args.raw))
    res["size"] = args.size
    res["command"] = args.command
    res["machine"] = machine(args.work, args.llmerge)
    if args.kernels:
        kj = json.loads(Path(args.kernels).read_text())
        res["kernels"] = [b for b in kj.get("benchmarks", []) if b.get("run_type", "iteration") == "iteration"]
    if args.methods_bench:
        mj = json.loads(Path(args.methods_bench).read_text())
        res["methods_bench"] = [b for b in mj.get("benchmarks", [])
                                if b.get("run_type", "iteration") == "iteration"]
    if args.notes and Path(args.notes).exists():
        res["notes"] = Path(args.notes).read_text()
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "results.md").write_text(markdown(res, args))
    (out / "results.svg").write_text(svg(res, res["machine"]["cores"]))


if __name__ == "__main__":
    main()
