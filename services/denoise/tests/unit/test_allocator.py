import subprocess
import sys

# Allocates and frees a 64 MiB tensor (one 512 px tile's activations per layer) on a new thread, as the
# inference worker does, and prints the page faults of five rounds once the heap has settled.
FAULTS_OF_REPEATED_LARGE_ALLOCATIONS = """
import resource, sys, threading
import torch
from pixtools_denoise.allocator import reuse_freed_memory

if sys.argv[1] == "tuned":
    assert reuse_freed_memory()
faults = []

def allocate() -> None:
    for _ in range(10):  # until the heap has settled
        torch.ones(1 << 24)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        torch.ones(1 << 24)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

thread = threading.Thread(target=allocate)
thread.start()
thread.join()
print(faults[0])
"""


def page_faults(mode: str) -> int:
    command = [sys.executable, "-c", FAULTS_OF_REPEATED_LARGE_ALLOCATIONS, mode]
    return int(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def test_reusing_freed_memory_stops_large_allocations_from_faulting_again() -> None:
    default, tuned = page_faults("default"), page_faults("tuned")

    assert default > 5 * 10_000  # about 16k faults per 64 MiB block with glibc's default
    assert tuned < default / 20
