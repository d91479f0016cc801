"""Neural building blocks: embeddings, attention, Transformer and RNN encoders/decoders."""
