"""CTM-Bench: learning curves of a CTM architecture space, a surrogate of them, and evaluations that replay them.

=================  ==========================================================================================
``space``          the bench's tasks, genome spaces and recorded steps (``TASKS``, ``genome_at``)
``curves``         ``evaluate_curve``: one training run measured at several steps (``ctm.evaluate`` continued)
``build``          the resumable, parallel data build and ``pack`` (``benchmarks/ctmbench_build.py``)
``data``           ``load_curves``: the shipped data as arrays [genome, seed, step]
``surrogate``      ``Surrogate.fit``: boosting or extra trees over (genome, steps), means, spreads, intervals
``trees``          fitted scikit-learn tree ensembles walked as flat arrays (fast, equal predictions)
``replay``         ``lookup`` / ``surrogate`` / ``surrogate_forest``: evaluate_fns a campaign names
=================  ==========================================================================================

``DATA_CARD.md`` beside this file says what the data holds and how faithful the surrogates are. Everything here
is a model of CTM training and knows nothing of search; scikit-learn (the ``bench`` extra) is imported only by
``surrogate``, ``trees`` and ``replay``.
"""
