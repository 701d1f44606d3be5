"""Schedules: cron slots in a time zone, the use cases of ``/v1/schedules``, the exactly-once scheduler,
warm starts from earlier runs, and promotion of a run's winner to the schedule's incumbent."""
