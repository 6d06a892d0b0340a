"""lra_wavelet: WaveletGPT and the Long Range Arena behind one interface."""

__version__ = "0.1.0"
