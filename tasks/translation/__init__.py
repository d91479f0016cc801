"""Machine translation: parallel text in, text out, scored with sacreBLEU and chrF."""

from encdec_tasks.translation.adapter import TranslationTask

__all__ = ["TranslationTask"]
