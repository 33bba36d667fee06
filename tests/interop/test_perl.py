"""Perl's Gearman::Client / Gearman::Worker (2.004, Debian libgearman-client-perl) on both servers."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.interop

WORKER = r"""
use strict; use warnings;
use Gearman::Worker;
my ($port, $n) = @ARGV;
my $done = 0;
my $w = Gearman::Worker->new(job_servers => ["127.0.0.1:$port"]);
$w->register_function(perl_rev => sub { $done++; return scalar reverse $_[0]->arg; });
$w->register_function(perl_progress => sub {
    my $job = shift; $job->set_status(1, 2); $job->set_status(2, 2); $done++; return "done:" . $job->arg;
});
$w->register_function(perl_boom => sub { $done++; die "kaboom\n"; });
$w->work(stop_if => sub { $done >= $n });
print "worked $done\n";
"""

CLIENT = r"""
use strict; use warnings;
use Gearman::Client;
use JSON::PP;
my ($port) = @ARGV;
my %out;
my $c = Gearman::Client->new(job_servers => ["127.0.0.1:$port"], exceptions => 1);
my $r = $c->do_task(perl_rev => "hello", { timeout => 20 });
$out{rev} = $r ? $$r : undef;
my @status;
my $p = $c->do_task(perl_progress => "x",
    { timeout => 20, on_status => sub { push @status, "$_[0]/$_[1]" } });
$out{progress} = $p ? $$p : undef;
$out{status} = \@status;
my ($failed, $exc) = (0, undef);
my $ts = $c->new_task_set;
$ts->add_task(perl_boom => "x", {
    on_fail => sub { $failed = 1 },
    on_exception => sub { $exc = $_[0] },
    timeout => 20,
});
$ts->wait(timeout => 20);
$out{failed} = $failed;
$out{exception} = $exc;
my $h = $c->dispatch_background(perl_nobody => "bg", { uniq => "perl-bg-1" });
$out{bg_handle} = defined $h ? 1 : 0;
my $st = $c->get_status($h);
$out{bg_known} = $st && $st->known ? 1 : 0;
print encode_json(\%out), "\n";
"""


def test_perl_client_and_worker(gearman_server, perl):
    port = str(gearman_server.port)
    worker = subprocess.Popen(
        [perl, "-e", WORKER, port, "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out = subprocess.run([perl, "-e", CLIENT, port], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["rev"] == "olleh"
        assert result["progress"] == "done:x"
        assert result["status"] == ["1/2", "2/2"]
        # A dying Perl task: the worker sends WORK_EXCEPTION (the frozen error) then WORK_FAIL; the
        # server ends the job at the exception, which this client asked for, so it sees that.
        assert "kaboom" in (result["exception"] or "")
        assert result["bg_handle"] == 1 and result["bg_known"] == 1
        wout, werr = worker.communicate(timeout=30)
        if "gearmand" not in str(gearman_server.proc.args[0]):
            # gearmand answers the WORK_FAIL that follows WORK_EXCEPTION with ERROR JOB_NOT_FOUND,
            # which kills Gearman::Worker if it reads it; gearpy ignores that WORK_FAIL.
            assert "worked 3" in wout, werr
            assert "JOB_NOT_FOUND" not in werr
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
