"""The operator's console in the admin: the job page's live tail, usage and controls, workers, throughput.

``reading`` is where the console reads a job's logs, usage and attempts: the one module to change when
they are stored elsewhere. The views only call it.
"""
