#!/usr/bin/env bash
# Copies the golden-vector cases the drift tests use from Debian's libonnx-testdata (the ONNX backend test
# suite, ONNX 1.12.0, Apache-2.0) into this folder. Run from this folder; needs apt-get download and dpkg-deb.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download libonnx-testdata >/dev/null && dpkg-deb -x libonnx-testdata_*.deb root)
data="$work/root/usr/share/libonnx-testdata/data"
# Cases of opset >= 7: ONNX Runtime 1.24 has no kernels for opset 6 (test_Linear, test_BatchNorm2d_eval of
# pytorch-converted fail to load with ORT_NOT_IMPLEMENTED: Gemm(6), BatchNormalization(6)).
for case in pytorch-converted/test_Conv2d pytorch-converted/test_Softmax pytorch-converted/test_Embedding \
            pytorch-converted/test_MaxPool2d node/test_gemm_default_matrix_bias node/test_batchnorm_example \
            node/test_argmax_default_axis_example node/test_gather_0; do
  rm -rf "$here/$case"
  mkdir -p "$here/$case"
  cp -r "$data/$case/." "$here/$case/"
done
echo "copied into $here"
