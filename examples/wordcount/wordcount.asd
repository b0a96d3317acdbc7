;;;; wordcount: count the words of a text. A small ASDF system that plait builds unchanged:
;;;; three files, two Debian systems, a test system and an entry point.

(defsystem "wordcount"
  :description "Count the words of standard input, most frequent first."
  :depends-on ("alexandria" "cl-ppcre")
  :components ((:file "package")
               (:file "count" :depends-on ("package"))
               (:file "main" :depends-on ("count")))
  :entry-point "wordcount:main"
  :in-order-to ((test-op (test-op "wordcount/tests"))))

(defsystem "wordcount/tests"
  :depends-on ("wordcount" "fiveam")
  :components ((:file "tests"))
  :perform (test-op (o c) (uiop:symbol-call :fiveam :run! :wordcount)))
