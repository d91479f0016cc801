"""The SeqGAN paper's synthetic-data oracle ("target LSTM") and the NLL-oracle metric.

Weights: `oracle_lstm.npz` (shared/datasets/seqgan-oracle/), named float32 arrays converted
from the authors' published `target_params_py3.pkl`. The cell is written out gate by gate
from that README (row-vector convention `x @ W`) rather than with nn.LSTM, whose fused
weight layout and double bias would need a re-packing that is easy to get subtly wrong.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encdec.decoding.categorical import sample_categorical
from encdec.data.text_files import read_bytes
from encdec.errors import DataError

ORACLE_FILE = "oracle_lstm.npz"
ORACLE_SHA256 = "2245274e4e4369cf528258f2d436616eb8d06ff5c6c4f14b788fa08fa6dfb9bc"
ORACLE_ARRAYS = (
    "embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wo_gate", "Uo_gate", "bo_gate",
    "Wc", "Uc", "bc", "W_out", "b_out",
)
START_TOKEN = 0
SEQ_LEN = 20


class OracleLSTM(nn.Module):
    """Fixed (non-trainable) oracle: vocab 5000, emb 32, hidden 32, sequences of 20 tokens."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__()
        missing = [k for k in ORACLE_ARRAYS if k not in arrays]
        if missing:
            raise DataError(f"oracle weights lack array(s) {', '.join(missing)}")
        for name in ORACLE_ARRAYS:
            self.register_buffer(name, torch.as_tensor(np.asarray(arrays[name], dtype=np.float32)))
        self.vocab_size, self.hidden = self.embedding.shape[0], self.Wi.shape[1]

    @classmethod
    def load(cls, path: str | Path, check_hash: bool = True) -> "OracleLSTM":
        path = Path(path)
        if not path.exists():
            raise DataError(
                f"{path}: SeqGAN oracle weights not found; set ENCDEC_DATA_DIR to the folder holding "
                f"seqgan-oracle/{ORACLE_FILE} (or data.oracle_path)"
            )
        raw = read_bytes(path)
        if check_hash and hashlib.sha256(raw).hexdigest() != ORACLE_SHA256:
            raise DataError(f"{path}: sha256 differs from the published oracle ({ORACLE_SHA256[:12]}...)")
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
            # numpy's own reason may advise allow_pickle, the unsafe option: never echo it
            reason = "pickled or unknown content" if "pickle" in str(exc) else str(exc)
            raise DataError(f"{path}: not a readable npz file of oracle weights ({reason})") from None
        missing = [k for k in ORACLE_ARRAYS if k not in arrays]
        bad = [k for k in ORACLE_ARRAYS if k in arrays and arrays[k].dtype.kind not in "fiu"]
        if missing:
            raise DataError(f"{path}: oracle weights lack array(s) {', '.join(missing)}")
        if bad:
            raise DataError(f"{path}: oracle weight array(s) {', '.join(bad)} are not numeric")
        emb, wi = arrays["embedding"], arrays["Wi"]
        if emb.ndim != 2 or wi.ndim != 2 or wi.shape[0] != emb.shape[1]:
            raise DataError(f"{path}: oracle weights have inconsistent shapes (embedding {emb.shape}, Wi {wi.shape})")
        (v, e), h = emb.shape, wi.shape[1]
        want = {"W_out": (h, v), "b_out": (v,)}
        for name in ORACLE_ARRAYS[1:-2]:
            want[name] = (h,) if name.startswith("b") else (e, h) if name.startswith("W") else (h, h)
        wrong = [f"{k} {arrays[k].shape} (want {w})" for k, w in want.items() if arrays[k].shape != w]
        if wrong:
            raise DataError(f"{path}: oracle weights have inconsistent shapes: {'; '.join(wrong)}")
        return cls(arrays)

    def cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        i = torch.sigmoid(x @ self.Wi + h @ self.Ui + self.bi)
        f = torch.sigmoid(x @ self.Wf + h @ self.Uf + self.bf)
        o = torch.sigmoid(x @ self.Wo_gate + h @ self.Uo_gate + self.bo_gate)
        c_tilde = torch.tanh(x @ self.Wc + h @ self.Uc + self.bc)
        c = f * c + i * c_tilde
        return o * torch.tanh(c), c

    def _zeros(self, rows: int) -> Tensor:
        return self.embedding.new_zeros(rows, self.hidden)

    @torch.no_grad()
    def sample(self, n: int, seq_len: int = SEQ_LEN, generator: torch.Generator | None = None) -> Tensor:
        """[n, seq_len] token ids drawn from the oracle (start token 0, no end token)."""
        h, c = self._zeros(n), self._zeros(n)
        token = torch.full((n,), START_TOKEN, dtype=torch.long)
        out = []
        for _ in range(seq_len):
            h, c = self.cell(self.embedding[token], h, c)
            probs = F.softmax(h @ self.W_out + self.b_out, dim=-1)
            token = sample_categorical(probs, generator)
            out.append(token)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def nll(self, tokens: Tensor) -> Tensor:
        """[n] per-token negative log-likelihood of each sequence (sum over tokens / length)."""
        tokens = tokens.long()
        n, length = tokens.shape
        h, c = self._zeros(n), self._zeros(n)
        inputs = torch.cat([torch.full((n, 1), START_TOKEN, dtype=torch.long), tokens[:, :-1]], dim=1)
        total = torch.zeros(n)
        for t in range(length):
            h, c = self.cell(self.embedding[inputs[:, t]], h, c)
            logp = F.log_softmax(h @ self.W_out + self.b_out, dim=-1)
            total -= logp.gather(1, tokens[:, t : t + 1]).squeeze(1)
        return total / length

    def nll_oracle(self, tokens: Tensor, batch_size: int = 1000) -> float:
        """The paper's metric: mean over sequences of the oracle's per-token NLL."""
        if tokens.numel() == 0:
            raise ValueError("nll_oracle needs at least one sequence")
        if int(tokens.max()) >= self.vocab_size or int(tokens.min()) < 0:
            raise ValueError(f"token ids must be in [0, {self.vocab_size}) for the oracle")
        return float(torch.cat([self.nll(chunk) for chunk in tokens.split(batch_size)]).mean())
