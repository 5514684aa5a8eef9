  (module)
