"""What this CPU is and which of the network's kernels it has, read in one place.

Why it matters: the network's paths rank differently by chip (runtime/fastest.py),
the int8 graph must be built for the CPU's int8 kernels (runtime/int8.py), and
bf16 is fast only where it is native. And benchmarks must name the chip: two
machines that both call themselves "AMD EPYC" were a Zen 4 with AVX-512 VNNI and
BF16 and a family-23 part with AVX2 only, and their timings do not compare.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough: all cores of a machine alike
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def flags() -> frozenset[str]:
    """The CPU's feature flags (Linux's names; numpy's CPU dispatch where no /proc)."""
    if "flags" in cpuinfo():
        return frozenset(cpuinfo()["flags"].split())
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return frozenset()
    names = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni", "AVX512BF16": "avx512_bf16"}
    return frozenset(linux for numpy_name, linux in names.items() if features.get(numpy_name))


def int8_kernels() -> str:
    """"vnni" where the CPU sums int8 products in int32 (AVX512-VNNI, AVX-VNNI, AMX),
    "avx2" on other x86 CPUs (their u8 x s8 products saturate in int16), "other"
    elsewhere (ARM's dot-product kernels do not saturate so)."""
    if platform.machine().lower() not in X86:
        return "other"
    return "vnni" if flags() & {"avx512_vnni", "avx_vnni", "amx_int8"} else "avx2"


def has_native_bf16() -> bool:
    """AMX or AVX512-BF16: without them bf16 is emulated and several times slower
    than fp32 (measured 6x on an AVX2 EPYC), so it must not be used blindly."""
    return bool(flags() & {"amx_bf16", "avx512_bf16"})


def describe() -> str:
    """The CPU in one line for benchmark records: name, family and model, and the
    kernels that decide the network's speed."""
    info = cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown"
    where = f" (family {info['cpu family']}, model {info['model']})" if "cpu family" in info else ""
    isa = "AVX-512" if "avx512f" in flags() else "AVX2" if "avx2" in flags() else platform.machine()
    return (f"{name}{where}: {isa}, int8 kernels {int8_kernels()}, "
            f"bf16 {'native' if has_native_bf16() else 'emulated'}")
