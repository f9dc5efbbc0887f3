"""audioseq: recurrent sequence models (RNN, LSTM, GRU and their baselines) on 16 kHz audio."""

SAMPLE_RATE = 16_000

__version__ = "0.1.0"
