;;;; Loading this file conses ~160 MB of garbage, more than SBCL lets go between collections,
;;;; and says on stdout whether a collection happened meanwhile.

(defvar *sink* nil)

(let ((epoch sb-kernel::*gc-epoch*))
  (dotimes (i 10000)
    (setf *sink* (make-array 2000 :element-type '(unsigned-byte 64))))
  (format t "~&plait-consing: ~a while loading ~d~%"
          (if (eq epoch sb-kernel::*gc-epoch*) "no collection" "a collection")
          (length *sink*)))
