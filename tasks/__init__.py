"""Task adapters (installed as `encdec_tasks`): one folder per task, wired by conf/task/<name>.yaml."""
