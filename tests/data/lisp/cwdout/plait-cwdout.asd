;;;; Components whose outputs ASDF's translations do not reach, as in cffi-tests and
;;;; uffi-tests: one writes where ASDF runs (*default-pathname-defaults*), a later file reads
;;;; it there while it compiles; another says, through OPERATION-DONE-P, that it is done.

(defclass cwd-output (source-file) ((type :initform "txt")))

(defmethod output-files ((o compile-op) (c cwd-output))
  (values (list (merge-pathnames (make-pathname :name (component-name c) :type "out"))) t))

(defmethod perform ((o compile-op) (c cwd-output))
  (with-open-file (s (first (output-files o c)) :direction :output :if-exists :supersede)
    (write-string (string-upcase (uiop:read-file-string (component-pathname c))) s)))

(defmethod perform ((o load-op) (c cwd-output)) nil)

(defclass prebuilt (source-file) ((type :initform "txt")))

(defmethod output-files ((o compile-op) (c prebuilt))
  (values (list (component-pathname c)) t))

(defmethod operation-done-p ((o compile-op) (c prebuilt)) t)

(defmethod perform ((o compile-op) (c prebuilt))
  (error "~a is prebuilt: ASDF never performs its compile-op" (component-name c)))

(defmethod perform ((o load-op) (c prebuilt)) nil)

(defsystem "plait-cwdout"
  :components ((cwd-output "thing")
               (prebuilt "ready")
               (:file "main" :depends-on ("thing" "ready"))))
