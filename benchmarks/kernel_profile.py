"""Where a compiled program's time goes, kernel by kernel, beside each kernel's FLOPs and bytes.

XLA:CPU's profiler records one event per executed thunk, named by the HLO instruction it runs
(`hlo_op`). `profile(compiled, args, repeats)` runs the compiled program under
`jax.profiler.trace`, reads the Perfetto trace back, and sums each instruction's time; the
instruction's FLOPs (its dots: 2 x output elements x contracted size) and bytes (its operands
and outputs, as the optimized HLO text prints their shapes) come from `compiled.as_text()`.
A kernel run inside a while loop (a decoding step) is counted once per iteration: `calls`
divided by the number of iterations is its count per step.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import json
import math
import re
import tempfile
import time

import jax

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4,
                "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}
_SHAPE = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([\d,]*)\]")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_COMPUTATION = re.compile(r"^\s*(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(.*\))?.*\{\s*$")
# Thunks that only hold others (their time is their body's kernels).
_CONTAINERS = ("while", "conditional", "call")


@dataclasses.dataclass
class Kernel:
  name: str
  calls: int
  seconds: float  # summed over all calls
  flops: float  # one call's
  bytes: int  # one call's: operands read + outputs written
  label: str = ""  # where in the model (the HLO metadata's op_name)


def _bytes(shape: str) -> int:
  return sum(_DTYPE_BYTES[t] * math.prod(int(d) for d in dims.split(",") if d)
             for t, dims in _SHAPE.findall(shape))


def _dims(shape: str) -> list[int]:
  m = _SHAPE.search(shape)
  return [int(d) for d in m.group(2).split(",") if d] if m else []


def _closing(text: str, start: int) -> int:
  """The index of the bracket closing the one at `text[start]`."""
  depth = 0
  for i in range(start, len(text)):
    depth += {"(": 1, "{": 1, ")": -1, "}": -1}.get(text[i], 0)
    if depth == 0:
      return i
  return len(text) - 1


@dataclasses.dataclass
class _Instruction:
  shape: str
  opcode: str
  operands: list[str]
  attributes: str

  @classmethod
  def parse(cls, rhs: str) -> "_Instruction":
    end = _closing(rhs, 0) + 1 if rhs.startswith("(") else rhs.index(" ")
    shape, rest = rhs[:end], rhs[end:].lstrip()
    opcode = rest[:rest.index("(")] if "(" in rest else rest
    open_ = rest.find("(")
    close = _closing(rest, open_) if open_ >= 0 else len(rest)
    operands = [o.strip().lstrip("%") for o in rest[open_ + 1:close].split(",") if o.strip()]
    return cls(shape, opcode, operands, rest[close + 1:])


def hlo_costs(hlo_text: str) -> dict[str, tuple[float, int, str]]:
  """{instruction name: (FLOPs, bytes, label)} for every instruction of the optimized HLO. A
  fusion's FLOPs are its called computation's dots (nested fusions included); bytes are the
  operands read and the outputs written; the label is the op_name of its metadata (where in
  the model it comes from)."""
  computations: dict[str, dict[str, _Instruction]] = {}
  current = None
  for line in hlo_text.splitlines():
    inst = _INSTRUCTION.match(line)
    if inst and current is not None and not line.rstrip().endswith("{"):
      computations[current][inst.group(1)] = _Instruction.parse(inst.group(2))
      continue
    comp = _COMPUTATION.match(line)
    if comp:
      current = comp.group(1)
      computations[current] = {}

  memo: dict[str, float] = {}

  def computation_flops(name: str) -> float:
    if name not in memo:
      memo[name] = 0.0  # guards the recursion only: HLO has no cycles
      memo[name] = sum(flops(i, computations[name]) for i in computations.get(name, {}).values())
    return memo[name]

  def flops(inst: _Instruction, scope: dict[str, _Instruction]) -> float:
    if inst.opcode == "dot":
      lhs = _dims(scope[inst.operands[0]].shape) if inst.operands[0] in scope else []
      contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", inst.attributes)
      size = math.prod(lhs[int(i)] for i in contracting.group(1).split(",") if i) \
          if contracting and lhs else 0
      return 2.0 * math.prod(_dims(inst.shape)) * size
    called = re.search(r"calls=%?([\w.\-]+)", inst.attributes)
    if inst.opcode == "fusion" and called:
      return computation_flops(called.group(1))
    return 0.0

  costs = {}
  for scope in computations.values():
    for name, inst in scope.items():
      moved = _bytes(inst.shape) + sum(_bytes(scope[o].shape) for o in inst.operands
                                       if o in scope)
      label = re.search(r'op_name="([^"]*)"', inst.attributes)
      label = "/".join(label.group(1).split("/")[-3:]) if label else ""
      costs[name] = (flops(inst, scope), moved, label)
  return costs


def _trace_events(directory: str) -> list[dict]:
  paths = glob.glob(f"{directory}/**/perfetto_trace.json.gz", recursive=True)
  if not paths:
    raise RuntimeError(f"jax.profiler wrote no perfetto trace under {directory}")
  with gzip.open(paths[-1]) as f:
    trace = json.load(f)
  return trace["traceEvents"] if isinstance(trace, dict) else trace


def profile(compiled, args: tuple, repeats: int = 1) -> tuple[list[Kernel], float]:
  """(kernels sorted by time, the calls' wall seconds) of `repeats` calls of `compiled`
  (already run once: nothing compiles inside the trace)."""
  costs = hlo_costs(compiled.as_text())
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      start = time.perf_counter()
      for _ in range(repeats):
        jax.block_until_ready(compiled(*args))
      wall = time.perf_counter() - start
    events = _trace_events(tmp)
  totals: dict[str, list] = {}
  for e in events:
    op = (e.get("args") or {}).get("hlo_op")
    if e.get("ph") != "X" or not op or op.split(".")[0] in _CONTAINERS:
      continue
    entry = totals.setdefault(op, [0, 0.0])
    entry[0] += 1
    entry[1] += float(e.get("dur") or 0.0) * 1e-6  # microseconds
  kernels = [Kernel(op, calls // repeats, seconds / repeats, *costs.get(op, (0.0, 0, "")))
             for op, (calls, seconds) in totals.items()]
  return sorted(kernels, key=lambda k: -k.seconds), wall / repeats


def per_step_table(kernels: list[Kernel], steps: int, wall: float, top: int = 12) -> dict:
  """The kernels that run once per decoding step (`calls` >= `steps` - 1), per step: calls,
  time, share of the step's kernel time, FLOPs, bytes and the rates they imply; and the rest
  (the prefill, run once) as one total. Printed, and returned for the JSON line."""
  looped = [k for k in kernels if k.calls >= max(steps - 1, 2)]
  once = [k for k in kernels if k not in looped]
  step_s = sum(k.seconds for k in looped) / steps
  rows = []
  print(f"\na decoding step, kernel by kernel ({len(looped)} kernels a step; "
        f"{step_s * 1e3:.2f} ms of kernel time a step, {steps} steps; "
        f"prefill and the rest {sum(k.seconds for k in once) * 1e3:.1f} ms once; "
        f"the call's wall time {wall * 1e3:.1f} ms)")
  print(f"{'kernel':<24}{'calls':>6}{'us/step':>9}{'share':>7}{'MFLOP':>9}{'MB':>8}"
        f"{'GFLOP/s':>8}{'GB/s':>6}  where (HLO metadata)")
  for k in looped[:top]:
    per_call = k.seconds / k.calls
    calls = k.calls / steps
    row = {"kernel": k.name, "where": k.label, "calls_per_step": round(calls, 2),
           "us_per_step": round(k.seconds / steps * 1e6, 1),
           "share": round(k.seconds / steps / step_s, 3) if step_s else None,
           "mflop": round(k.flops / 1e6, 2), "mb": round(k.bytes / 1e6, 3),
           "gflop_per_s": round(k.flops / per_call / 1e9, 1) if per_call else None,
           "gb_per_s": round(k.bytes / per_call / 1e9, 1) if per_call else None}
    rows.append(row)
    print(f"{k.name[:23]:<24}{calls:>6.1f}{row['us_per_step']:>9.1f}{row['share']:>7.1%}"
          f"{row['mflop']:>9.2f}{row['mb']:>8.3f}{row['gflop_per_s'] or 0:>8.1f}"
          f"{row['gb_per_s'] or 0:>6.1f}  {k.label[-60:]}")
  step_flops = sum(k.flops * k.calls for k in looped) / steps
  step_bytes = sum(k.bytes * k.calls for k in looped) / steps
  summary = {"kernels_per_step": round(sum(k.calls for k in looped) / steps, 1),
             "step_ms": round(step_s * 1e3, 3), "step_mflop": round(step_flops / 1e6, 1),
             "step_mb": round(step_bytes / 1e6, 2),
             "step_gflop_per_s": round(step_flops / step_s / 1e9, 1) if step_s else None,
             "step_gb_per_s": round(step_bytes / step_s / 1e9, 1) if step_s else None,
             "once_ms": round(sum(k.seconds for k in once) * 1e3, 2),
             "call_wall_ms": round(wall * 1e3, 2), "top_kernels": rows}
  print(f"a step: {summary['kernels_per_step']} kernels, {summary['step_mflop']} MFLOP, "
        f"{summary['step_mb']} MB moved: {summary['step_gflop_per_s']} GFLOP/s, "
        f"{summary['step_gb_per_s']} GB/s")
  return summary
