;;; The application loads lint-base before lint-tool, so lint-tool builds under ASDF though
;;; it does not say that it uses lint-base.
(defsystem "lint-app"
  :depends-on ("lint-base" "lint-tool")
  :components ((:file "app")))
