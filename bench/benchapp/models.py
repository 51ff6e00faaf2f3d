from django.db import models


class Mark(models.Model):
    """A timestamp written by a benchmark task or step (when did it run)."""

    key = models.CharField(max_length=100, db_index=True)
    t = models.FloatField()

    class Meta:
        db_table = "bench_mark"
