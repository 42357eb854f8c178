"""The LLM method family (llm-zeroshot, tallrec, llara, ilora); methods.py registers them.

Only `methods` is imported when the registry lists methods; the other modules (backbone,
prompts, batches, adapters, recommender, scoring, training, answers) load when a method runs.
"""

from methods.llm import methods as _methods  # noqa: F401  (registers the methods)
