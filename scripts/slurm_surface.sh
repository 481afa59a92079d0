#!/usr/bin/env bash
# A 2D surface sharded over SLURM nodes with torchrun (one torchrun per node, 1 process per GPU).
#   sbatch scripts/slurm_surface.sh runs/cnn/checkpoints/epoch_015.pt runs/cnn/surface.h5
# Re-submitting the same job after a failure resumes from the file's done mask.
#SBATCH --job-name=landscape-surface
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
set -euo pipefail
CKPT=${1:?checkpoint}
OUT=${2:?surface file}
GPUS_PER_NODE=${GPUS_PER_NODE:-4}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun \
    --nnodes="$SLURM_NNODES" --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv-backend=c10d --rdzv-endpoint="$HEAD:29500" --rdzv-id="$SLURM_JOB_ID" \
    -m landscape --quiet surface "$CKPT" --out "$OUT" \
    --x -1:1:51 --y -1:1:51 --device cuda
