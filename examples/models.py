"""The tables the seed's SQL talks to (users, records, approvals), as Django models."""

from django.db import models


class User(models.Model):
    id = models.CharField(primary_key=True, max_length=100)
    email = models.EmailField()
    subscription_status = models.CharField(max_length=20, default="trial")

    class Meta:
        db_table = "users"


class Record(models.Model):
    """``INSERT INTO records VALUES (?, ?)``: exactly these two columns, in this order."""

    id = models.BigIntegerField(primary_key=True)
    normalized = models.TextField()

    class Meta:
        db_table = "records"


class Approval(models.Model):
    id = models.CharField(primary_key=True, max_length=100)
    user_id = models.CharField(max_length=100)
    status = models.CharField(max_length=20)

    class Meta:
        db_table = "approvals"


class DemoSwitch(models.Model):
    """A switch the demo's workflows read, flipped in the admin or with ``manage.py demo_switch``.

    The flaky export checks ``export-service``: off, its step fails; on, it succeeds, so a
    newcomer can see a step fail for good, fix the cause, and retry from the failed step.
    """

    name = models.CharField(max_length=50, unique=True)
    on = models.BooleanField(default=False)

    class Meta:
        db_table = "examples_demo_switch"

    def __str__(self) -> str:
        return f"{self.name}: {'on' if self.on else 'off'}"

    @classmethod
    def is_on(cls, name: str) -> bool:
        return cls.objects.filter(name=name, on=True).exists()
