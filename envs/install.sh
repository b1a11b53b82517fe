#!/usr/bin/env bash
# The one install command (README, .ci/run): a venv with the pinned requirements and this
# package, plus the Fashion-MNIST data set the training-time study and the tests use.
# torch 2.14.1 / torchvision 0.29.1 are pinned; where pip finds them on local disk, it uses them.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: Fashion-MNIST (training-time study, tests), OpenSSH's server (the tests
# of SSH profiling start their own sshd on 127.0.0.1) and SLURM with munge (the cluster test,
# tests/cluster, starts its own slurmctld/slurmd/munged on 127.0.0.1). Only installed: this
# script enables and starts nothing system-wide.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ ! -x /usr/sbin/sshd ] \
  || [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/slurmd ] || [ ! -x /usr/sbin/munged ] \
  || ! command -v sbatch >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq \
      dataset-fashion-mnist openssh-server openssh-client \
      slurmctld slurmd slurm-client munge
  else
    echo "note: no apt-get; install Fashion-MNIST, openssh-server, SLURM and munge yourself" >&2
  fi
fi

python3.11 -m venv .venv
.venv/bin/pip install -q -c envs/constraints.txt -r envs/requirements.txt -e .

# Test fixture, not a dependency: the deepforest wheel ships four real aerial images with
# Pascal-VOC boxes (the detection/mAP tests read them straight from the wheel, no install).
.venv/bin/pip download -q --no-deps deepforest==2.1.0 -d .venv/fixtures
