#!/bin/bash
# On the GPU machine, from the repository root: unpacks what tools/cuda/pack.sh made, points the loader at the libtorch
# of the machine's PyTorch, reports which symbols TorchSharp's native library misses there, then runs the CUDA tests
# (Optim.Tests.dll run ...) and the quick benchmark on the GPU. Logs go to $OUT (default /tmp/out).
# Environment: PACK (default .device), TESTS_S and BENCH_S (time limits in seconds; BENCH_S=0 skips the benchmark),
# DEADLINE (the benchmark's --deadline), FILTERS (the tests to run; default every CUDA test).
cd "$(dirname "$0")/../.."
PACK=${PACK:-.device}; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
python3 -c "import torch;print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
mkdir -p /tmp/dn /tmp/t /tmp/b
tar -xJf $PACK/runtime.tar.xz -C /tmp/dn & tar -xJf $PACK/Optim.Tests.tar.xz -C /tmp/t & tar -xJf $PACK/Optim.Benchmarks.tar.xz -C /tmp/b & wait
export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH LD_LIBRARY_PATH=$T:${LD_LIBRARY_PATH:-} DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# LibTorchSharp was built against the libtorch TorchSharp ships; symbols bind lazily, so list what this one lacks.
nm -D --undefined-only /tmp/t/libLibTorchSharp.so | awk '{print $2}' | sort -u > /tmp/need
for l in libtorch.so libtorch_cpu.so libc10.so libtorch_cuda.so libc10_cuda.so; do nm -D --defined-only $T/$l | awk '{print $3}'; done | sort -u > /tmp/have
comm -23 /tmp/need /tmp/have | grep -v -E '@GLIBC|@CXXABI|@GCC|@GLIBCXX|^_ZNS|^_ZSt|^_ZNKS|__cxa|^_Unwind' > $OUT/missing-symbols.txt || true
echo "LibTorchSharp needs $(wc -l < /tmp/need) symbols; missing here (not libc/libstdc++): $(wc -l < $OUT/missing-symbols.txt)"
c++filt < $OUT/missing-symbols.txt | head -20
(cd /tmp/t && timeout ${TESTS_S:-300} dotnet Optim.Tests.dll run ${FILTERS:-Cuda TestTorchTensorBugs} > $OUT/cuda-tests.log 2>&1; echo "tests exit $?")
grep -E "^FAIL|passed," $OUT/cuda-tests.log | cut -c1-400 | tail -40
if [ "${BENCH_S:-240}" != 0 ]; then
  (cd /tmp/b && timeout ${BENCH_S:-240} dotnet Optim.Benchmarks.dll --quick --device cuda --deadline ${DEADLINE:-150} --no-write \
     --shape 2000x100 --shape transformer --shape 20x1000000 > $OUT/bench.log 2>&1; echo "bench exit $?")
  sed -n '/^| algorithm (settings)/,/^$/p' $OUT/bench.log
fi
