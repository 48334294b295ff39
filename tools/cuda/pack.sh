#!/bin/bash
# Packs what the CUDA checks need onto a GPU machine that has PyTorch (CUDA) but no .NET and no registry access:
# the .NET runtime, and the Release outputs of the tests and benchmarks without TorchSharp-cpu's libtorch (PyTorch's
# is used there), with LibTorchSharp beside the assemblies. Build first: dotnet build Optim.sln -c Release.
# Usage: tools/cuda/pack.sh [DIR]   (default .device, which git ignores locally; about 45 MB)
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-.device}
mkdir -p "$dest"
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
runtime=$(ls -d "$dotnet_root"/shared/Microsoft.NETCore.App/10.* | sort -V | tail -1)
(cd "$dotnet_root" && tar -cf - dotnet host "shared/Microsoft.NETCore.App/$(basename "$runtime")") | xz -T2 -6 > "$dest/runtime.tar.xz"
for app in tests/Optim.Tests benchmarks/Optim.Benchmarks; do
  name=$(basename $app)
  out=$app/bin/Release/net10.0
  tmp=$(mktemp -d)
  # Without the deps file the host loads every assembly beside the entry one, and native libraries from that folder
  # or LD_LIBRARY_PATH, where PyTorch's libtorch is.
  (cd $out && tar -cf - --exclude=./runtimes --exclude='./*.pdb' --exclude='./*.deps.json' \
     --exclude='./??' --exclude='./??-??' --exclude='./zh-Han?' .) | (cd "$tmp" && tar -xf -)
  cp $out/runtimes/linux-x64/native/libLibTorchSharp.so "$tmp/"
  if [ -f $out/runtimes/linux-x64/native/libSkiaSharp.so ]; then cp $out/runtimes/linux-x64/native/libSkiaSharp.so "$tmp/"; fi
  (cd "$tmp" && tar -cf - .) | xz -T2 -6 > "$dest/$name.tar.xz"
  rm -rf "$tmp"
done
ls -la "$dest"
