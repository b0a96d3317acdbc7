;;; A file that requires an SBCL module itself, when compiled and when loaded, instead of
;;; declaring it: ASDF operates then, in its compile and in each compile that loads its fasl.
(defsystem "plait-requiring"
  :components ((:file "uses") (:file "user" :depends-on ("uses"))))
