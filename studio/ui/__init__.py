"""The page: one module per tab (components and event wiring only), the form built from the settings
classes (`forms`), the page in the browser's language (`text`). Imports every package below."""
