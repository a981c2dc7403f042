from django.urls import path

from tests.contrib.djangoapp import views

urlpatterns = [path("notes", views.create_note)]
