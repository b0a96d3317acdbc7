;;;; A small asdf-system-connections: a macro exported from ASDF's package, and system
;;;; connections, which ASDF loads as soon as the systems they require are loaded.
(in-package :asdf)
(export '(plait-conn-defthing system-connection))
(defmacro plait-conn-defthing (name value)
  `(defparameter ,name ',value))

(defclass system-connection (system)
  ((systems-required :initarg :systems-required :reader systems-required)))

(defun loaded-p (name)
  (let ((s (registered-system name)))
    (and s (component-operation-time (make-operation 'load-op) s))))

(defmethod operate :after ((o t) (c t) &key &allow-other-keys)
  (map-systems (lambda (s)
                 (when (and (typep s 'system-connection)
                            (every #'loaded-p (systems-required s))
                            (not (loaded-p (component-name s))))
                   (load-system (component-name s))))))

(pushnew :plait-conn-helper *features*)
