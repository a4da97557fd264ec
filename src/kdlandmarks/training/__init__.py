"""Training layer: Tough/Tolerant teachers and KD-Loss students from a recipe (torch, Lightning).

- `config`: YAML recipes and their checks (`load_recipe`, `Recipe`, `TeacherCache`).
- `asm`: the active shape model behind the soft landmarks (`fit_store_asm`).
- `data`: the face-grouped train/validation split of a store. `module`: `LandmarkModule`.
- `teacher_cache`: teacher outputs computed once per stored sample.
- `run`: `train_model`, one run as named steps (resumed after a kill).

Depends on the data, models and evaluation layers (metrics).
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"train_model": "run", "Teachers": "run", "load_recipe": "config", "Recipe": "config",
           "TeacherCache": "config", "fit_store_asm": "asm", "LandmarkModule": "module"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
