;;; tangle/emacs-tangle.el --- tangle notes with Emacs' own org-babel  -*- lexical-binding: t -*-
;; The reference tangler: `emacs -Q --batch -l tangle/emacs-tangle.el NOTE.org...'
;; tangles each note exactly as a user's `C-c C-v t' would, with nothing from
;; the user's init file.  The tests compare its output with tangle/tangle's.
(require 'org)
(require 'ob-tangle)
;; Keep org-id from reading or writing ~/.emacs.d while tangling notes that
;; carry :ID: properties.
(setq org-id-track-globally nil
      org-id-locations-file (make-temp-name "/tmp/caracal-org-id-")
      make-backup-files nil)
(dolist (file command-line-args-left)
  (org-babel-tangle-file file))
(setq command-line-args-left nil)
