"""Workflows compose the stages (data, model, loss, training, thresholds, metrics, report, tracking)
into what the commands do. They print nothing: progress goes to an ``on_event`` callback
(:mod:`evalkit.workflows.events`), and the CLI renders it.

* :mod:`.experiment` - ``run_experiment`` (``evalkit run``), ``prepare_data``
* :mod:`.grid` - ``run_spec`` (``evalkit run SPEC`` with a ``[grid]``)
* :mod:`.evaluation` - ``evaluate_scores``, ``evaluate_predictions``, ``evaluate_model``
* :mod:`.job` - ``evaluate_job`` (``evalkit evaluate``: gates, baseline, exit code)
* :mod:`.artifacts` - what a training run logs
"""
