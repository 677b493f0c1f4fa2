"""torchaudio reference for fer's log-mel front end (data/audio.go).

usage: mel_ref.py DIR [DIR...]
Each DIR holds config.json ({"sample_rate", "n_fft", "win_length", "hop_length",
"f_min", "f_max", "n_mels"}) and wave.f64 (the waveform, float64 LE). The
script writes, as float64 LE with their shapes in out.json:
  fb32    melscale_fbanks in torchaudio's default float32   [n_freqs, n_mels]
  fb64    the same computed with torch's default dtype float64
  mel64   MelSpectrogram (float64 throughout)                [n_mels, frames]
  db64    AmplitudeToDB("power") of mel64
  mel32   MelSpectrogram in float32 on the float32 waveform
"""
import json
import os
import sys

import numpy as np
import torch
import torchaudio


def main(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    wave = np.fromfile(os.path.join(d, "wave.f64"), dtype="<f8")
    kw = dict(sample_rate=cfg["sample_rate"], n_fft=cfg["n_fft"], win_length=cfg["win_length"],
              hop_length=cfg["hop_length"], f_min=cfg["f_min"], f_max=cfg["f_max"], n_mels=cfg["n_mels"])
    out = {}
    n_freqs = cfg["n_fft"] // 2 + 1
    out["fb32"] = torchaudio.functional.melscale_fbanks(n_freqs, cfg["f_min"], cfg["f_max"], cfg["n_mels"], cfg["sample_rate"])
    mel32 = torchaudio.transforms.MelSpectrogram(**kw)
    out["mel32"] = mel32(torch.from_numpy(wave.astype(np.float32)))
    torch.set_default_dtype(torch.float64)
    try:
        compute64(cfg, kw, n_freqs, wave, out)
    finally:
        torch.set_default_dtype(torch.float32)
    shapes = {}
    for k, v in out.items():
        a = v.detach().double().numpy()
        shapes[k] = list(a.shape)
        a.astype("<f8").tofile(os.path.join(d, k + ".f64"))
    json.dump(shapes, open(os.path.join(d, "out.json"), "w"))


def compute64(cfg, kw, n_freqs, wave, out):
    out["fb64"] = torchaudio.functional.melscale_fbanks(n_freqs, cfg["f_min"], cfg["f_max"], cfg["n_mels"], cfg["sample_rate"])
    mel64 = torchaudio.transforms.MelSpectrogram(**kw)
    assert mel64.mel_scale.fb.dtype == torch.float64
    out["mel64"] = mel64(torch.from_numpy(wave))
    out["db64"] = torchaudio.transforms.AmplitudeToDB(stype="power")(out["mel64"])


if __name__ == "__main__":
    for d in sys.argv[1:]:
        main(d)
