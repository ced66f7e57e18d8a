# sockd as a Nomad system job: one sockd on every client node, on the
# node's network, serving the units rendered by the templates below.
# README.md beside this file says how to deploy it and how a release
# rolls out. The image is built from contrib/Dockerfile (sockd publishes
# none): change `image` to where you pushed it.
#
# Needs on every client: the Docker driver, and the host volume
# "sockd-run" (client.hcl beside this file) for the API socket, so that
# `sockctl --api /run/sockd/api.sock` works on the node itself too.
job "sockd" {
  type        = "system"
  datacenters = ["*"]

  # A change to this file (a new image, say) replaces sockd on one node
  # at a time: that node's units stop with it, so leave a minute between
  # nodes. A new release of an app is not a change to this file: see
  # the web.service template.
  update {
    max_parallel = 1
    stagger      = "1m"
  }

  group "sockd" {
    # The units' sockets are the node's: ListenStream=0.0.0.0:8080 is
    # port 8080 of the node's addresses, with no port mapping.
    network {
      mode = "host"
    }

    volume "sockd-run" {
      type      = "host"
      source    = "sockd-run"
      read_only = false
    }

    task "sockd" {
      driver = "docker"

      config {
        image        = "registry.example.com/sockd:0.1"
        network_mode = "host"
        # Overrides the image's CMD; the ENTRYPOINT is sockd.
        args = [
          "--units", "/local/units",
          "--api", "/run/sockd/api.sock",
          "--runtime-dir", "/run/sockd",
        ]
      }

      # The API socket (and sockd's runtime directory) on the node.
      volume_mount {
        volume      = "sockd-run"
        destination = "/run/sockd"
      }

      # Longer than the longest TimeoutStopSec= of the units: on a stop
      # sockd gives every child its SIGTERM and that long to drain.
      kill_timeout = "45s"

      # Every process sockd starts lives in this task's container and
      # counts against its memory.
      resources {
        cpu    = 500
        memory = 1024
      }

      # The units. A template is rendered into the task's local/
      # directory (/local in the container) by writing a temporary file
      # and renaming it over the unit file; sockd watches /local/units
      # and reloads on its own, and SIGHUP makes it reload at once.
      template {
        destination   = "local/units/web.socket"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          [Socket]
          ListenStream=0.0.0.0:8080
          FileDescriptorName=http
        EOT
      }

      # The release of web is the Nomad variable nomad/jobs/sockd, key
      # web_release (this job's tasks may read it). Changing it is the
      # deploy: every node renders the new web.service, and the change
      # script loads it (sockctl reload) and restarts web with --wait
      # through the deploy hook: the new process starts on the same
      # socket, the old one drains once the new one is ready, and a new
      # release that fails to start is rolled back on that node while
      # the old one serves on. A failed script is a task event
      # ("Template ran script … on change but it exited with code: 1");
      # fail_on_error stays false, since killing the task would stop
      # every unit of the node.
      template {
        destination = "local/units/web.service"
        change_mode = "script"
        change_script {
          command       = "/bin/sh"
          args          = ["-c", "sockctl --api /run/sockd/api.sock reload && exec /usr/local/lib/sockd/deploy-hook web --api /run/sockd/api.sock"]
          timeout       = "3m"
          fail_on_error = false
        }
        # Nodes do not all restart web at the same moment: each waits a
        # random time up to this long after the change.
        splay = "30s"
        data  = <<-EOT
          [Service]
          Type=notify
          ExecStart=/usr/local/bin/sockd-demo
          {{- with nomadVar "nomad/jobs/sockd" }}
          Environment="DEMO_MESSAGE=web release {{ .web_release }}"
          {{- end }}
          Restart=on-failure
          TimeoutStopSec=30s
        EOT
      }
    }
  }
}
