from django.contrib import admin

from examples.models import DemoSwitch


@admin.register(DemoSwitch)
class DemoSwitchAdmin(admin.ModelAdmin):
    list_display = ("name", "on")
    list_editable = ("on",)
