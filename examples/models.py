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
