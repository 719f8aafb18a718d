#!/bin/sh
# An end-to-end demo: a scratch repository made from these examples, a few recorded runs
# (one of them failing), then `git exp log` and `git exp show`.
# Usage: examples/demo.sh [DIRECTORY]   (default: a new temporary directory)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=${1:-$(mktemp -d "${TMPDIR:-/tmp}/gitexp-demo.XXXXXX")}
mkdir -p "$repo"
cd "$repo"
git init -q
git config user.name >/dev/null || git config user.name "gitexp demo"
git config user.email >/dev/null || git config user.email "demo@example.com"
cp "$here/train_logreg.py" "$here/crash_midway.py" "$here/train.sh" .
printf 'checkpoints/\n' > .gitignore
git add -A
git commit -q -m "Add training scripts"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step git exp run train_logreg.py --lr 0.5 --epochs 5
git exp run -m "baseline" train_logreg.py --lr 0.5 --epochs 5
step git exp run -t sweep train_logreg.py --lr 0.05 --epochs 5
git exp run -t sweep train_logreg.py --lr 0.05 --epochs 5
sed -i.bak 's/default=8/default=4/' train_logreg.py && rm -f train_logreg.py.bak
step "git exp run train_logreg.py --epochs 3   # with an uncommitted edit"
git exp run train_logreg.py --epochs 3
step git exp run crash_midway.py --fail-at 2
git exp run crash_midway.py --fail-at 2 || echo "(exit status $?: the failure is recorded)"
step git exp run train.sh 4
git exp run train.sh 4
step git exp log
git exp log
step git exp show @~1
git exp show @~1
step git status --short
git status --short
printf '\nThe demo repository is %s\n' "$repo"
