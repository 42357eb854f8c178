"""Methods register themselves here by importing `METHODS` from methods.base (one file each).

A family of methods may live in a sub-package (methods/llm/): its `__init__` imports the light
module that registers them; the registry does not import the sub-package's other modules.
"""
