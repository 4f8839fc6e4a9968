#!/usr/bin/env bash
# Issue 14's GPU work in one prepared run (about 9 minutes), for a session lent the device:
#   1. the AdaIN decoder, two phases at 256 px (weights/README.md, "No AdaIN decoder is
#      shipped yet"): an autoencoder (identity loss only), then the paper's losses from it;
#   2. Starry Night's fast style net retrained at 256 px (photos, frames, smooth pictures).
# Each phase has a time box; a phase cut short is exported from its last checkpoint.
#
# Here, first (the device takes the repository and the carried folder, 64 MiB in all):
#   python scripts/prepare_gpu_run.py out/gpu/data --content ../shared/media/photos \
#       --clip ../shared/media/clips/bigbuckbunny.mp4 --smooth /tmp/smooth \
#       --styles /tmp/adain_styles --painting ../shared/media/styles/starry_night.jpg
#   python scripts/trim_pastiche.py out/gpu/site
# Then the device tool: run(command="bash scripts/gpu_run.sh", carry=["out/gpu"], timeout_s=590)
# A dry run here: DEVICE=cpu SIZE=64 AE_S=20 ADAIN_S=20 STYLE_S=20 OUT=/tmp/gpu_out bash scripts/gpu_run.sh
set -u
export PYTHONPATH="$PWD/out/gpu/site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_out}; WORK=${WORK:-/tmp/gpu_work}; D=out/gpu/data
DEVICE=${DEVICE:-cuda}; SIZE=${SIZE:-256}; BATCH=${BATCH:-8}
AE_S=${AE_S:-100}; ADAIN_S=${ADAIN_S:-300}; STYLE_S=${STYLE_S:-120}; CKPT=${CKPT:-250}
mkdir -p "$OUT" "$WORK"
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/log.txt"; }
step_of() { python3 -c "import torch; print(torch.load('$1', weights_only=True, map_location='cpu')['step'])"; }
train() { python3 run_pipeline.py train "$@" -q >>"$OUT/log.txt" 2>&1; echo $?; }
common=(--device "$DEVICE" --precision bf16 --image-size "$SIZE" --batch-size "$BATCH")

log "$(python3 -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no cuda")')"

# 1a. autoencoder: the decoder learns to invert relu4_1
rc=$(timeout -s INT "$AE_S" bash -c "$(declare -f train); OUT=$OUT; train arbitrary $D/photos/content $D/styles \
    --out $WORK/ae.safetensors --content-weight 0 --style-weight 0 --identity-weight 1 --lr 1e-3 \
    --steps 20000 --sample-every 2000 --checkpoint-every $CKPT ${common[*]}")
log "autoencoder: exit $rc"
if [ ! -f "$WORK/ae.safetensors" ]; then
    s=$(step_of "$WORK/ae_train/checkpoint.pt"); log "autoencoder stopped at step $s: exported from there"
    train arbitrary $D/photos/content $D/styles --out $WORK/ae.safetensors --content-weight 0 \
        --style-weight 0 --identity-weight 1 --lr 1e-3 --steps "$s" --resume "${common[@]}" >/dev/null
fi

# 1b. the paper's losses from it, the identity term kept
rc=$(timeout -s INT "$ADAIN_S" bash -c "$(declare -f train); OUT=$OUT; train arbitrary $D/photos/content $D/styles \
    --out $WORK/adain.safetensors --init $WORK/ae.safetensors --identity-weight 50 \
    --steps 200000 --sample-every 2000 --checkpoint-every $CKPT ${common[*]}")
log "adain: exit $rc"
if [ ! -f "$WORK/adain.safetensors" ]; then
    s=$(step_of "$WORK/adain_train/checkpoint.pt"); log "adain stopped at step $s: exported from there"
    train arbitrary $D/photos/content $D/styles --out $WORK/adain.safetensors --init $WORK/ae.safetensors \
        --identity-weight 50 --steps "$s" --resume "${common[@]}" >/dev/null
fi

# 2. Starry Night at 256 px (the shipped recipe's weights, with TV loss from the start)
rc=$(timeout -s INT "$STYLE_S" bash -c "$(declare -f train); OUT=$OUT; train style $D/photos \
    --style $D/painting.jpg --out $WORK/starry_night.safetensors --style-weight 2e5 --tv-weight 100 \
    --steps 4000 --sample-every 1000 --checkpoint-every $CKPT ${common[*]}")
log "starry_night: exit $rc"
if [ ! -f "$WORK/starry_night.safetensors" ]; then
    s=$(ls "$WORK/starry_night_train/checkpoints" | tail -n 1 | tr -dc 0-9 | sed 's/^0*//')
    log "starry_night stopped at step $s: exported from there"
    train style $D/photos --style $D/painting.jpg --out $WORK/starry_night.safetensors --style-weight 2e5 \
        --tv-weight 100 --steps "$s" --resume "${common[@]}" >/dev/null
fi

cp "$WORK"/adain.safetensors "$WORK"/starry_night.safetensors "$OUT"/ 2>/dev/null
cp "$WORK"/adain_train/losses.csv "$OUT"/adain_losses.csv 2>/dev/null
cp "$WORK"/starry_night_train/losses.csv "$OUT"/starry_night_losses.csv 2>/dev/null
last() { ls "$1" 2>/dev/null | tail -n 1; }
a=$(last "$WORK/adain_train/samples"); [ -n "$a" ] && cp "$WORK/adain_train/samples/$a" "$OUT/adain_$a"
s=$(last "$WORK/starry_night_train/samples"); [ -n "$s" ] && cp "$WORK/starry_night_train/samples/$s" "$OUT/starry_$s"
log "done: $(ls "$OUT" | tr '\n' ' ')"
