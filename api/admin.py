"""Admins create and revoke API tokens in the Django admin; the secret is shown once."""

from django.contrib import admin, messages

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__username", "name")
    fields = ("user", "name")
    actions = ["revoke_tokens"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        token, secret = ApiToken.issue(obj.user, obj.name)
        obj.pk = token.pk
        messages.warning(request, f"The new token is {secret} — copy it now, it will not be shown again.")

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset):
        for token in queryset:
            token.revoke()
        messages.success(request, f"Revoked {queryset.count()} token(s).")
