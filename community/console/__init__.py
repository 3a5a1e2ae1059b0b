"""The owner's console home: what spans every domain (the first steps, later the numbers).
The top floor: it reads the domains below it and nothing imports it but app.py."""
