import torch, torch.nn as nn
from lra_wavelet.registry import MODELS
from lra_wavelet.models.gpt import GPT
from lra_wavelet.models import backbone as bb

@MODELS.register("gpt-tok1")
class GPTTok1(GPT):
    @torch.no_grad()
    def reset_parameters(self):
        super().reset_parameters(); nn.init.normal_(self.tok.weight, std=1.0)

@MODELS.register("gpt-headlecun")
class GPTHead(GPT):
    @torch.no_grad()
    def reset_parameters(self):
        super().reset_parameters()
        for m in self.head.modules():
            if isinstance(m, nn.Linear): bb._lecun_normal_(m.weight)

@MODELS.register("gpt-xavier")
class GPTXavier(GPT):
    @torch.no_grad()
    def reset_parameters(self):
        super().reset_parameters()
        for m in self.modules():
            if isinstance(m, nn.Linear): nn.init.xavier_uniform_(m.weight)
