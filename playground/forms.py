from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)


class ProjectSwitchForm(forms.Form):
    project = forms.IntegerField()
