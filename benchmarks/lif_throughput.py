"""LIF throughput: every QuantLIFNode backend against SpikingJelly (same as ``mdsnn-zoo bench lif``).

    python benchmarks/lif_throughput.py --out benchmarks/results/lif_cpu.md
"""

import sys

from mdsnn_zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "lif", *sys.argv[1:]]))
