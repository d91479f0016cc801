"""RecBole 1.2.1 side of recsys_vs_recbole.py; runs in bench/.venv-recbole (never the project's
venv). Trains SASRec or GRU4Rec on ml-100k for a fixed number of epochs, times each training
epoch, scores the final model with full ranking on valid and test, and dumps RecBole's own
valid/test targets so the driver can check the splits match."""

import argparse
import json
import time

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--data-path", required=True)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--layers", type=int, default=2)
p.add_argument("--out", required=True)
p.add_argument("--checkpoint-dir", required=True)
args = p.parse_args()
torch.set_num_threads(1)

config_dict = {
    "data_path": args.data_path,
    "checkpoint_dir": args.checkpoint_dir,
    "use_gpu": False,
    "show_progress": False,
    "seed": 2020,
    "epochs": args.epochs,
    "MAX_ITEM_LIST_LENGTH": 50,
    "loss_type": "CE",
    "train_neg_sample_args": None,
    # leave-one-out by time, full ranking (RecBole's sequential benchmark setting)
    "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
    "metrics": ["Hit", "NDCG", "MRR"],
    "topk": [5, 10, 20],
    "valid_metric": "NDCG@10",
}
if args.model == "SASRec":
    config_dict.update({"hidden_size": 64, "n_layers": args.layers})
else:
    config_dict.update({"embedding_size": 64, "num_layers": args.layers})
config = Config(model=args.model, dataset="ml-100k", config_dict=config_dict)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

epoch_times = []
for epoch in range(args.epochs):
    model.train()
    start = time.perf_counter()
    loss = trainer._train_epoch(train_data, epoch, show_progress=False)
    epoch_times.append(time.perf_counter() - start)
    print(f"recbole {args.model} epoch {epoch}: {epoch_times[-1]:.1f}s loss {float(loss):.4f}", flush=True)
start = time.perf_counter()
valid = trainer.evaluate(valid_data, load_best_model=False)
test = trainer.evaluate(test_data, load_best_model=False)
eval_seconds = time.perf_counter() - start


def targets(loader):
    inter = loader._dataset.inter_feat
    users = dataset.id2token("user_id", inter["user_id"].numpy())
    items = dataset.id2token("item_id", inter["item_id"].numpy())
    return dict(zip(map(str, users), map(str, items)))


json.dump(
    {
        "model": args.model, "epoch_seconds": epoch_times, "eval_seconds": eval_seconds,
        "valid": {k: float(v) for k, v in valid.items()}, "test": {k: float(v) for k, v in test.items()},
        "num_train_examples": len(train_data._dataset), "params": sum(p.numel() for p in model.parameters()),
        "valid_targets": targets(valid_data), "test_targets": targets(test_data),
        "config": {k: str(config[k]) for k in ["hidden_size", "embedding_size", "n_layers", "num_layers",
                                               "hidden_dropout_prob", "attn_dropout_prob", "dropout_prob",
                                               "learning_rate", "train_batch_size", "MAX_ITEM_LIST_LENGTH",
                                               "user_inter_num_interval", "item_inter_num_interval",
                                               "normalize_all", "eval_args"]},
    },
    open(args.out, "w"), indent=1,
)
