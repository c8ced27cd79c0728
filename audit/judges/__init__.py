"""Judges behind one interface (``base.Judge``): ``contrast`` (offline rules), ``llm``
(a rubric sent through litellm to any model)."""
