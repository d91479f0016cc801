"""The Hydra config tree, installed as the package `encdec_conf` so that a non-editable
install carries it; `encdec.cli.CONF_DIR` is this folder. Nothing here is imported."""
