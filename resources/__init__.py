"""Package data, installed as medvis_desktop.resources: the demo models with their cards, the
demo studies with their sources' licences, the icon and licence texts. Read it through
medvis_desktop.package_data, never by a path into the checkout."""
